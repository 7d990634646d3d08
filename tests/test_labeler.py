import numpy as np
import pytest
from conftest import SHARED, require

from cknet import KnowledgeGraph
from cknet.data.labels import load_label_csv, load_mesh_labels, mesh_components
from cknet.labeler import Finding, KeywordLabeler, RuleLabeler, binarize

EFFUSION = Finding("effusion", [r"(?:pleural )?effusions?"])
CARDIOMEGALY = Finding("cardiomegaly", [r"cardiomegaly", r"enlarged heart"])
PNEUMONIA = Finding("pneumonia", [r"pneumonia"])
LABELER = RuleLabeler([EFFUSION, CARDIOMEGALY, PNEUMONIA])


@pytest.mark.parametrize(
    "sentence, expected",
    [
        ("There is a small left pleural effusion.", 1),
        ("No pleural effusion.", 0),
        ("Lungs are clear without effusion.", 0),
        ("The costophrenic angles are free of effusion.", 0),
        ("Negative for pleural effusion.", 0),
        ("The lungs are clear of effusion.", 0),
        ("The previously seen effusion has resolved.", 0),
        ("Pleural effusion is not seen.", 0),
        ("No pneumothorax or pleural effusion.", 0),
        ("There may be a small effusion.", -1),
        ("Possible small effusion.", -1),
        ("A small effusion cannot be excluded.", -1),
        ("Blunting suggestive of effusion.", -1),
        ("Atelectasis or effusion at the left base.", -1),
        ("No change in the small left pleural effusion.", 1),
        ("Heart size normal.", np.nan),
    ],
)
def test_negation_and_uncertainty(sentence, expected):
    value = LABELER.label([sentence])[0, 0]
    assert value == expected or (np.isnan(expected) and np.isnan(value))


def test_scope_ends_at_clause_and_sentence_boundaries():
    labels = LABELER.label([
        "No effusion but cardiomegaly is present.",
        "No effusion. Enlarged heart.",
        "No effusion, there is cardiomegaly.",
        "No focal airspace opacity to suggest pneumonia.",
        "Cardiomegaly. Pneumonia cannot be excluded.",
    ])
    assert labels[0, 0] == 0 and labels[0, 1] == 1
    assert labels[1, 0] == 0 and labels[1, 1] == 1
    assert labels[2, 0] == 0 and labels[2, 1] == 1
    assert labels[3, 2] == 0  # "to suggest" under a negation is a negation
    assert labels[4, 1] == 1 and labels[4, 2] == -1


def test_positive_mention_wins_over_negative_and_uncertain():
    assert LABELER.label(["No effusion on the right. Small effusion on the left."])[0, 0] == 1
    assert LABELER.label(["Possible effusion. No effusion on the right."])[0, 0] == -1


def test_binarize_policies():
    labels = np.array([[1, 0, -1, np.nan]])
    assert binarize(labels).tolist() == [[1, 0, 0, 0]]
    assert binarize(labels, uncertain=1).tolist() == [[1, 0, 1, 0]]
    with pytest.raises(ValueError, match="uncertain"):
        binarize(labels, uncertain=0.5)


def test_keyword_labeler_uses_graph_synonyms_and_derives_normal():
    graph = KnowledgeGraph(["normal", "pleural effusion", "hernia hiatal"],
                           synonyms={"hernia hiatal": ["hiatal hernia"]})
    labeler = KeywordLabeler(graph, normal_node="normal")
    labels = labeler.label(["Large hiatal hernia. No pleural effusions.", "The lungs are clear.",
                            "Possible pleural effusion."])
    assert labels.tolist()[0] == [0.0, 0.0, 1.0]
    assert labels[1, 0] == 1 and np.isnan(labels[1, 1])
    assert labels[2, 0] == 0 and labels[2, 1] == -1  # an uncertain finding is not normal


def test_openi40_labeler_agrees_with_mesh_on_val():
    """Human MeSH indexing of IU X-Ray reports is the independent reference."""
    import json

    data = require(SHARED / "data" / "iu_xray")
    graph = KnowledgeGraph.openi40()
    ids, splits, mesh = load_mesh_labels(data / "mesh_tags.csv", graph)
    reports = {e["id"]: e["report"] for split in json.loads((data / "annotation.json").read_text()).values()
               for e in split}
    rows = [i for i, s in enumerate(splits) if s == "val"]
    predicted = KeywordLabeler.openi40(graph).label_binary([reports[ids[i]] for i in rows])
    reference = mesh[rows]
    frequent = reference.sum(0) >= 10
    tp = (predicted[:, frequent] & reference[:, frequent]).sum()
    fp = (predicted[:, frequent] & (1 - reference[:, frequent])).sum()
    fn = ((1 - predicted[:, frequent]) & reference[:, frequent]).sum()
    assert frequent.sum() >= 10
    assert 2 * tp / (2 * tp + fp + fn) >= 0.85


def test_mesh_mapping():
    assert mesh_components("Fractures, Bone/clavicle/right;Spine/degenerative") == [
        "fractures bone", "clavicle", "right", "spine", "degenerative"]


def test_load_mesh_labels(tmp_path):
    path = tmp_path / "mesh.csv"
    path.write_text('id,split,mesh,problems\n'
                    'a,train,"Calcified Granuloma/lung;Spine/degenerative",x\n'
                    'b,val,normal,normal\n')
    graph = KnowledgeGraph.openi40()
    ids, splits, labels = load_mesh_labels(path, graph)
    assert ids == ["a", "b"] and splits == ["train", "val"]
    positive = {graph.nodes[j] for j in np.nonzero(labels[0])[0]}
    assert positive == {"granuloma", "calcification", "scoliosis"}
    assert {graph.nodes[j] for j in np.nonzero(labels[1])[0]} == {"normal"}


def test_load_label_csv(tmp_path):
    path = tmp_path / "chexpert.csv"
    path.write_text("subject_id,study_id,Edema,Pneumonia\n1,10,1.0,\n2,20,-1.0,0.0\n")
    ids, names, labels = load_label_csv(path, id_column=["subject_id", "study_id"])
    assert ids == ["1_10", "2_20"] and names == ["Edema", "Pneumonia"]
    assert labels[0, 0] == 1 and np.isnan(labels[0, 1]) and labels[1].tolist() == [-1, 0]
    with pytest.raises(ValueError, match="Fracture"):
        load_label_csv(path, columns=["Fracture"], id_column="study_id")
    bad = tmp_path / "bad.csv"
    bad.write_text("study_id,Edema\n1,yes\n")
    with pytest.raises(ValueError, match=r"bad.csv, line 2, column 'Edema'"):
        load_label_csv(bad)


# The conventions both modes share, one decision per line: (sentence, observation, label)
# with 1 positive, 0 negative, -1 uncertain, None blank.
CHEXPERT_DECISIONS = [
    # Enlarged Cardiomediastinum: structures, normal -> 0, widened -> 1
    ("The cardiomediastinal silhouette is within normal limits.", "Enlarged Cardiomediastinum", 0),
    ("The cardiomediastinal silhouette is normal in size and contour.", "Enlarged Cardiomediastinum", 0),
    ("The mediastinum is widened.", "Enlarged Cardiomediastinum", 1),
    ("Calcification over the left mediastinum.", "Enlarged Cardiomediastinum", None),
    # Cardiomegaly
    ("The heart is normal in size.", "Cardiomegaly", 0),
    ("Heart size upper limits of normal.", "Cardiomegaly", 0),
    ("Heart size is not enlarged.", "Cardiomegaly", 0),
    ("Borderline heart size.", "Cardiomegaly", -1),
    ("The heart is enlarged.", "Cardiomegaly", 1),
    ("Stable cardiomegaly.", "Cardiomegaly", 1),
    ("Possible CHF.", "Cardiomegaly", -1),
    ("Pacemaker lead over the heart.", "Cardiomegaly", None),
    # Lung Lesion: granulomas and calcified nodules are not lesions
    ("A 1 cm nodule in the right upper lobe.", "Lung Lesion", 1),
    ("Nodular opacity in the left lower lobe.", "Lung Lesion", 1),
    ("Calcified nodule in the right upper lobe.", "Lung Lesion", None),
    ("Calcified granuloma in the right upper lobe.", "Lung Lesion", None),
    ("No massive effusion.", "Lung Lesion", None),
    # Lung Opacity: scarring and interstitial markings count; consolidation and density do not
    ("Scarring at the left base.", "Lung Opacity", 1),
    ("Prominent interstitial markings.", "Lung Opacity", 1),
    ("Left lower lobe airspace disease.", "Lung Opacity", 1),
    ("Right lower lobe consolidation.", "Lung Opacity", None),
    ("Calcified density in the right upper lobe.", "Lung Opacity", None),
    ("Pleural scarring on the left.", "Lung Opacity", None),
    ("No focal airspace opacity.", "Lung Opacity", 0),
    # Edema, Consolidation, Pneumonia
    ("Mild pulmonary vascular congestion.", "Edema", 1),
    ("Findings of CHF.", "Edema", 1),
    ("Cephalization of the pulmonary vessels.", "Edema", None),
    ("Right lower lobe consolidation.", "Consolidation", 1),
    ("Left lower lobe airspace disease.", "Pneumonia", None),
    ("Opacity concerning for infection.", "Pneumonia", -1),
    ("Right lower lobe pneumonia.", "Pneumonia", 1),
    # Atelectasis, Pneumothorax, Pleural Effusion, Pleural Other
    ("Plate-like atelectasis at the left base.", "Atelectasis", 1),
    ("Partial collapse of the right middle lobe.", "Atelectasis", 1),
    ("Small right hydropneumothorax.", "Pneumothorax", 1),
    ("No pneumothorax.", "Pneumothorax", 0),
    ("Small pericardial effusion.", "Pleural Effusion", None),
    ("Blunting of the costophrenic angle, possibly small effusion.", "Pleural Effusion", -1),
    ("Pleural scarring on the left.", "Pleural Other", 1),
    ("Apical pleural thickening.", "Pleural Other", 1),
    # Fracture: old and healed count
    ("Old healed rib fracture.", "Fracture", 1),
    ("No acute fracture.", "Fracture", 0),
    # Support Devices: named devices count; wires, clips, stents and bare positions do not
    ("Right IJ catheter tip in the SVC.", "Support Devices", 1),
    ("Right IJ.", "Support Devices", None),
    ("Median sternotomy wires.", "Support Devices", None),
    ("Surgical clips in the right upper quadrant.", "Support Devices", None),
    ("Pacemaker in place.", "Support Devices", 1),
    ("Endotracheal tube 4 cm above the carina.", "Support Devices", 1),
    # ... and, deliberately unlike CheXpert's substring matching, whole words only
    ("Plate-like atelectasis at the left base.", "Support Devices", None),
    ("History of tuberculosis.", "Support Devices", None),
    ("Findings support chronic changes.", "Support Devices", None),
    # No Finding: a pathology, positive or uncertain, makes a report not normal; devices do not
    ("No acute cardiopulmonary abnormality.", "No Finding", 1),
    ("No hiatal hernia. Lungs are clear.", "No Finding", 1),
    ("Pacemaker in place. Lungs are clear.", "No Finding", 1),
    ("Possible small effusion.", "No Finding", None),
]

# Where CheXbert's reading (the default) and the CheXpert labeler's ("chexpert") differ:
# (sentence, observation, CheXbert's label, the CheXpert labeler's label).
CONVENTION_DECISIONS = [
    # a structure called stable or unchanged: not enlarged (CheXbert), uncertain (CheXpert)
    ("Stable cardiomediastinal silhouette.", "Enlarged Cardiomediastinum", 0, -1),
    ("Heart size is stable.", "Cardiomegaly", 0, -1),
    ("Stable enlargement of the cardiac silhouette.", "Cardiomegaly", 1, -1),
    # IU X-Ray's de-identification hid the qualifier ("have not changed")
    ("The heart and lungs have XXXX XXXX in the interval.", "Cardiomegaly", 0, -1),
    # No Finding: CheXbert looks at the 13 observations only; CheXpert also at its list of
    # other abnormalities
    ("Calcified granuloma in the right upper lobe.", "No Finding", 1, None),
    ("Degenerative changes of the spine.", "No Finding", 1, None),
    ("Mild scoliosis.", "No Finding", 1, None),
]


def _label(labeler, sentence, observation):
    from cknet.labeler import OBSERVATIONS

    return labeler.label([sentence])[0, OBSERVATIONS.index(observation)]


def _same(value, expected):
    return (np.isnan(value) and expected is None) or value == expected


@pytest.mark.parametrize("convention", ["chexbert", "chexpert"])
@pytest.mark.parametrize("sentence, observation, expected", CHEXPERT_DECISIONS)
def test_chexpert_conventions(sentence, observation, expected, convention):
    from cknet.labeler import CheXpertLabeler

    value = _label(CheXpertLabeler(convention), sentence, observation)
    assert _same(value, expected), (sentence, observation, value)


@pytest.mark.parametrize("sentence, observation, chexbert, chexpert", CONVENTION_DECISIONS)
def test_chexbert_and_chexpert_conventions_differ(sentence, observation, chexbert, chexpert):
    from cknet.labeler import CheXpertLabeler, make_labeler

    assert _same(_label(CheXpertLabeler(), sentence, observation), chexbert)
    assert _same(_label(make_labeler("rules"), sentence, observation), chexbert)
    assert _same(_label(make_labeler("rules:chexpert"), sentence, observation), chexpert)


def test_unknown_convention_is_refused():
    from cknet.labeler import CheXpertLabeler

    with pytest.raises(ValueError, match="convention must be one of"):
        CheXpertLabeler("negbio")
