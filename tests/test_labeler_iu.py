"""The default labeler on real IU X-Ray sentences, read and labelled by hand.

Every sentence is verbatim from a report of the standard split's **train** studies (its
annotation id beside it; "XXXX" is the collection's de-identification). The expected
label is what a reader applying CheXbert's conventions (`cknet.labeler.chexpert`) gives:
1 positive, 0 negative, -1 uncertain, None not mentioned. Each of the 14 observations
has sentences that state it, deny it and hedge it where the reports do.
"""

import numpy as np
import pytest

from cknet.labeler import OBSERVATIONS, CheXpertLabeler

IU_TRAIN_SENTENCES = [
    # No Finding
    ("CXR3832_IM-1935", "The lungs are clear.", "No Finding", 1),
    (
        "CXR3748_IM-1874",
        "The cardiomediastinal silhouette and pulmonary vasculature are within normal limits in size.",
        "No Finding",
        1,
    ),
    ("CXR1125_IM-0082", "Aortic XXXX calcifications.", "No Finding", 1),
    ("CXR2936_IM-1338", "The heart size is mildly enlarged.", "No Finding", None),
    ("CXR1898_IM-0581", "This may be related to chronic interstitial changes or edema.", "No Finding", None),
    # Enlarged Cardiomediastinum
    ("CXR3863_IM-1957", "The cardiomediastinal silhouette is enlarged.", "Enlarged Cardiomediastinum", 1),
    ("CXR363_IM-1798", "Normal cardiomediastinal contours.", "Enlarged Cardiomediastinum", 0),
    (
        "CXR2450_IM-0986",
        "The cardiomediastinal contours are within normal limits.",
        "Enlarged Cardiomediastinum",
        0,
    ),
    ("CXR2827_IM-1246", "The mediastinal silhouette is unremarkable.", "Enlarged Cardiomediastinum", 0),
    ("CXR1668_IM-0441", "Cardiomediastinal silhouette is clear.", "Enlarged Cardiomediastinum", 0),
    ("CXR3940_IM-2011", "The heart and mediastinum are otherwise normal.", "Enlarged Cardiomediastinum", 0),
    (
        "CXR2021_IM-0668",
        "Stable borderline cardiomegaly, stable mediastinal and hilar contours.",
        "Enlarged Cardiomediastinum",
        0,
    ),
    (
        "CXR1045_IM-0036",
        "Chronic appearing contour deformity of the right posterolateral 7th rib again noted "
        "suggestive of old injury.",
        "Enlarged Cardiomediastinum",
        None,
    ),
    # Cardiomegaly
    ("CXR2936_IM-1338", "The heart size is mildly enlarged.", "Cardiomegaly", 1),
    ("CXR3342_IM-1603", "Heart size remains large.", "Cardiomegaly", 1),
    ("CXR1905_IM-0587", "Enlarged cardiac contour, stable.", "Cardiomegaly", 1),
    (
        "CXR1707_IM-0466",
        "Frontal and lateral views of the chest show normal size of the cardiac silhouette.",
        "Cardiomegaly",
        0,
    ),
    (
        "CXR2868_IM-1275",
        "Heart size, mediastinal contour, and pulmonary vascularity are within normal limits.",
        "Cardiomegaly",
        0,
    ),
    ("CXR3537_IM-1730", "The heart and lungs have XXXX XXXX in the interval.", "Cardiomegaly", 0),
    ("CXR1935_IM-0605-0001", "The heart is borderline in size.", "Cardiomegaly", -1),
    ("CXR1990_IM-0648", "Probable mild cardiomegaly.", "Cardiomegaly", -1),
    ("CXR1311_IM-0203", "The cardiac silhouette size is borderline enlarged.", "Cardiomegaly", -1),
    # Lung Lesion
    (
        "CXR1668_IM-0441",
        "There is a discrete 1.4 cm nodule within the anterior segment of the right lower lobe.",
        "Lung Lesion",
        1,
    ),
    (
        "CXR1035_IM-0028",
        "Some vague small nodular opacities are present in the right upper lung zone.",
        "Lung Lesion",
        1,
    ),
    ("CXR177_IM-0503", "There are no nodules or masses.", "Lung Lesion", 0),
    ("CXR3940_IM-2011", "There is no infiltrate, effusion, mass or pneumothorax.", "Lung Lesion", 0),
    (
        "CXR1412_IM-0262",
        "Bony overlap in the lung apices could obscure a small pulmonary nodule.",
        "Lung Lesion",
        -1,
    ),
    # Lung Opacity
    ("CXR3901_IM-1980", "Bibasilar air space opacities have significantly improved.", "Lung Opacity", 1),
    ("CXR620_IM-2202", "Stable left lower lobe scarring.", "Lung Opacity", 1),
    (
        "CXR52_IM-2131",
        "There is no pleural effusion, pneumothorax, or focal airspace disease.",
        "Lung Opacity",
        0,
    ),
    ("CXR1898_IM-0581", "No focal airspace disease.", "Lung Opacity", 0),
    (
        "CXR2181_IM-0793-1001",
        "There is suspected right lower lobe airspace opacity XXXX demonstrated on the lateral study.",
        "Lung Opacity",
        -1,
    ),
    (
        "CXR3233_IM-1530",
        "There is minimal XXXX scarring or atelectasis in the left lung base.",
        "Lung Opacity",
        -1,
    ),
    # Edema
    ("CXR28_IM-1231", "Pulmonary vascular congestion again noted.", "Edema", 1),
    ("CXR934_IM-2432", "Small amount of subpleural edema is demonstrated in the fissures.", "Edema", 1),
    ("CXR2789_IM-1223", "No typical findings of pulmonary edema.", "Edema", 0),
    (
        "CXR756_IM-2307",
        "No airspace consolidation, pneumothorax, pleural effusion, or pulmonary edema.",
        "Edema",
        0,
    ),
    (
        "CXR2570_IM-1073",
        "Pulmonary vasculature is increased with mildly increased interstitial markings and "
        "fissural thickening, suggesting mild pulmonary edema.",
        "Edema",
        -1,
    ),
    (
        "CXR2483_IM-1012",
        "Heart is towards upper limits normal for size and may be mild pulmonary vascular congestion.",
        "Edema",
        -1,
    ),
    # Consolidation
    ("CXR1445_IM-0287", "Left basilar consolidation and pleural effusions seen.", "Consolidation", 1),
    (
        "CXR2370_IM-0931",
        "In the interval, consolidation and atelectasis have developed in the right lower lobe.",
        "Consolidation",
        1,
    ),
    ("CXR902_IM-2409", "There are no focal areas of consolidation.", "Consolidation", 0),
    (
        "CXR3949_IM-2018",
        "No focal alveolar consolidation, no definite pleural effusion seen.",
        "Consolidation",
        0,
    ),
    (
        "CXR1076_IM-0054",
        "There is opacity at posterior aspect of lower chest seen on lateral view which probably "
        "represents left lower lobe consolidation.",
        "Consolidation",
        -1,
    ),
    # Pneumonia
    (
        "CXR808_IM-2341",
        "In the left lower lobe there is airspace disease consistent with pneumonia.",
        "Pneumonia",
        1,
    ),
    ("CXR3670_IM-1826", "There is no focal air space opacity to suggest a pneumonia.", "Pneumonia", 0),
    ("CXR2169_IM-0785-0001", "No focal airspace consolidation to suggest pneumonia.", "Pneumonia", 0),
    (
        "CXR332_IM-1588",
        "There are are streaky retrocardiac left lower lobe opacities, in the correct clinical "
        "setting this could represent a pneumonia.",
        "Pneumonia",
        -1,
    ),
    (
        "CXR2688_IM-1159",
        "This may be secondary to edema, or alternatively atypical infection.",
        "Pneumonia",
        -1,
    ),
    # Atelectasis
    (
        "CXR2246_IM-0843",
        "XXXX opacities in the left lung base consistent with atelectasis.",
        "Atelectasis",
        1,
    ),
    ("CXR3520_IM-1718", "Minimal streaky atelectasis the left lung base.", "Atelectasis", 1),
    (
        "CXR3103_IM-1454",
        "There is redemonstration without significant interval change of mild subsegmental "
        "atelectasis of the left base.",
        "Atelectasis",
        1,
    ),
    ("CXR1462_IM-0299", "No gross consolidation, atelectasis or infiltrate.", "Atelectasis", 0),
    (
        "CXR3004_IM-1388",
        "Left greater than right basilar opacity, probable atelectasis and/or scarring.",
        "Atelectasis",
        -1,
    ),
    # Pneumothorax
    ("CXR465_IM-2093-0001", "Small right pneumothorax.", "Pneumothorax", 1),
    ("CXR1525_IM-0340", "There is a large hydropneumothorax within the left chest.", "Pneumothorax", 1),
    ("CXR2236_IM-0833", "No pleural fluid or pneumothorax is appreciated.", "Pneumothorax", 0),
    ("CXR1691_IM-0453", "Probable XXXX residual left pneumothorax.", "Pneumothorax", -1),
    # Pleural Effusion
    ("CXR3557_IM-1742-0001", "Small bilateral pleural effusions are present.", "Pleural Effusion", 1),
    ("CXR2046_IM-0688", "There is a XXXX left-sided pleural effusion as well.", "Pleural Effusion", 1),
    ("CXR694_IM-2260", "There is no evidence of pleural effusion.", "Pleural Effusion", 0),
    ("CXR118_IM-0123", "There is no pneumothorax or effusion.", "Pleural Effusion", 0),
    (
        "CXR1019_IM-0015",
        "There is blunting of the right lateral costophrenic sulcus which could be secondary to a "
        "small effusion versus scarring.",
        "Pleural Effusion",
        -1,
    ),
    # Pleural Other
    ("CXR5_IM-2117", "There is biapical pleural thickening, unchanged from prior.", "Pleural Other", 1),
    (
        "CXR3272_IM-1553",
        "Old rib fractures and pleural thickening are present on the right.",
        "Pleural Other",
        1,
    ),
    (
        "CXR2158_IM-0776",
        "There are diffuse increased interstitial markings, suggestive of pulmonary fibrosis in "
        "bilateral lung XXXX.",
        "Pleural Other",
        -1,
    ),
    # Fracture
    ("CXR3202_IM-1513", "Multiple healed posterior left rib fractures.", "Fracture", 1),
    ("CXR3336_IM-1598", "There are several age-indeterminate left-sided rib fractures noted.", "Fracture", 1),
    ("CXR67_IM-2243", "No displaced fracture identified.", "Fracture", 0),
    ("CXR2541_IM-1053", "No acute, displaced rib fractures identified.", "Fracture", 0),
    ("CXR3865_IM-1958", "Bilateral rib deformities are noted, possibly old fractures.", "Fracture", -1),
    # Support Devices
    (
        "CXR3892_IM-1974-0001",
        "Left-sided subclavian central venous catheter with tip in the right atrium.",
        "Support Devices",
        1,
    ),
    ("CXR1990_IM-0648", "Tracheostomy tube.", "Support Devices", 1),
    ("CXR3165_IM-1490", "Interval removal of left-sided intravenous catheter.", "Support Devices", 0),
    ("CXR3043_IM-1417", "The right internal jugular catheter has been removed.", "Support Devices", 0),
]


def test_the_sentences_cover_every_observation_and_are_many():
    assert len(IU_TRAIN_SENTENCES) >= 60
    assert {o for _, _, o, _ in IU_TRAIN_SENTENCES} == set(OBSERVATIONS)


@pytest.mark.parametrize(
    "study, sentence, observation, expected",
    IU_TRAIN_SENTENCES,
    ids=[f"{s}-{o}" for s, _, o, _ in IU_TRAIN_SENTENCES],
)
def test_iu_train_sentence(study, sentence, observation, expected):
    value = CheXpertLabeler().label([sentence])[0, OBSERVATIONS.index(observation)]
    assert (expected is None and np.isnan(value)) or value == expected, (study, sentence, value)


def test_sentences_are_verbatim_from_train_reports(iu_annotation):
    reports = {e["id"]: e["report"] for e in iu_annotation["train"]}
    for study, sentence, _, _ in IU_TRAIN_SENTENCES:
        assert study in reports, study
        assert sentence in reports[study], (study, sentence)
