"""The findings the synthetic radiographs show, their prevalence, their graph, and the
mapping from IU X-Ray's MeSH indexing onto them."""

from __future__ import annotations

from cknet.graph import KnowledgeGraph

FINDINGS = (
    "cardiomegaly", "left pleural effusion", "right pleural effusion", "left pneumothorax",
    "right pneumothorax", "left lung opacity", "right lung opacity", "left lung nodule",
    "right lung nodule", "left atelectasis", "right atelectasis", "pulmonary edema",
    "rib fracture", "support devices", "hiatal hernia", "scoliosis", "calcified granuloma",
)
PREVALENCE = {
    "cardiomegaly": 0.25, "pulmonary edema": 0.12, "rib fracture": 0.08, "support devices": 0.15,
    "hiatal hernia": 0.08, "scoliosis": 0.15, "calcified granuloma": 0.15,
}
SIDED_PREVALENCE = {"pleural effusion": 0.12, "pneumothorax": 0.06, "lung opacity": 0.12,
                    "lung nodule": 0.08, "atelectasis": 0.12}


# MeSH head terms of the IU X-Ray indexing (mesh_tags.csv) drawn as each finding; sided
# findings take their side from the tag's qualifiers.
_MESH_FINDINGS = {
    "Cardiomegaly": "cardiomegaly",
    "Pleural Effusion": "pleural effusion", "Pneumothorax": "pneumothorax",
    "Opacity": "lung opacity", "Airspace Disease": "lung opacity", "Consolidation": "lung opacity",
    "Pneumonia": "lung opacity", "Infiltrate": "lung opacity",
    "Nodule": "lung nodule", "Mass": "lung nodule", "Pulmonary Atelectasis": "atelectasis",
    "Pulmonary Edema": "pulmonary edema", "Pulmonary Congestion": "pulmonary edema",
    "Heart Failure": "pulmonary edema", "Fractures, Bone": "rib fracture",
    "Catheters, Indwelling": "support devices", "Surgical Instruments": "support devices",
    "Implanted Medical Device": "support devices", "Medical Device": "support devices",
    "Tube, Inserted": "support devices", "Stents": "support devices",
    "Hernia, Hiatal": "hiatal hernia",
    "Scoliosis": "scoliosis", "Spondylosis": "scoliosis", "Kyphosis": "scoliosis",
    "Osteophyte": "scoliosis",
    "Calcified Granuloma": "calcified granuloma", "Granulomatous Disease": "calcified granuloma",
    "Granuloma": "calcified granuloma",
}


def findings_from_mesh(tags: str) -> list[str]:
    """The renderer's findings for a study's MeSH indexing, as in IU X-Ray's
    ``mesh_tags.csv`` (``"Cardiomegaly/mild;Pleural Effusion/left"``, or ``"normal"``).

    A tag's head term picks the finding (opacity, airspace disease, consolidation,
    pneumonia and infiltrate are drawn as lung opacity; nodule and mass as a nodule;
    congestion and heart failure as edema; devices, catheters, tubes and stents as
    support devices; degenerative spine, spondylosis, kyphosis and osteophytes as the
    spine finding; granulomatous disease and lung calcinosis as calcified granuloma).
    A sided finding is drawn on the side its qualifiers name, on both sides for
    "bilateral" or no side. Tags with no drawable counterpart are dropped.

    Args:
        tags: the ``mesh`` column of one study.

    Returns:
        Finding names in `FINDINGS` order.
    """
    found = set()
    for tag in tags.split(";"):
        head, *qualifiers = [part.strip() for part in tag.split("/")]
        words = {q.lower() for q in qualifiers}
        if head in ("Thoracic Vertebrae", "Spine") and "degenerative" in words:
            head = "Spondylosis"
        if head == "Calcinosis" and "lung" in words:
            head = "Calcified Granuloma"
        finding = _MESH_FINDINGS.get(head)
        if finding is None:
            continue
        if finding in FINDINGS:
            found.add(finding)
            continue
        sides = [s for s in ("left", "right") if s in words] or ["left", "right"]
        found.update(f"{side} {finding}" for side in sides)
    return [f for f in FINDINGS if f in found]


def synthetic_graph() -> KnowledgeGraph:
    """The knowledge graph of the synthetic findings: one node per `FINDINGS` entry,
    joined where findings go together (the two sides of a finding; effusion, opacity
    and atelectasis of one side; heart failure's cardiomegaly, edema and effusions;
    nodule and granuloma; fracture and pneumothorax; a hernia and the basal collapse
    beside it)."""
    edges = [(f"left {name}", f"right {name}") for name in SIDED_PREVALENCE]
    for side in ("left", "right"):
        edges += [(f"{side} pleural effusion", f"{side} atelectasis"),
                  (f"{side} lung opacity", f"{side} atelectasis"),
                  (f"{side} pleural effusion", "cardiomegaly"),
                  (f"{side} pleural effusion", "pulmonary edema"),
                  (f"{side} lung nodule", "calcified granuloma"),
                  (f"{side} pneumothorax", "rib fracture")]
    edges += [("cardiomegaly", "pulmonary edema"), ("support devices", "cardiomegaly"),
              ("scoliosis", "rib fracture"), ("hiatal hernia", "left atelectasis")]
    return KnowledgeGraph(list(FINDINGS), edges, name="synthetic17",
                          source="cknet.data.synthetic: findings the renderer draws")
