"""Nothing lost, nothing mixed: kills, races, folders of another kind, NaN, bad input.

Each test reproduces a failure found when cknet was used as a hostile or careless user
would (see issue 19) and checks the guarantee that now holds.
"""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import torch
from conftest import REPO, SAMPLES, require, small_config
from PIL import Image

from cknet import CKNet, CKNetConfig, KnowledgeGraph, ReportTokenizer
from cknet.cli import main
from cknet.labeler import CheXpertLabeler
from cknet.metrics import nlg_scores
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.persistence.files import write_atomic
from cknet.persistence.folders import MARKER, folder_kind, save_folder
from cknet.training import Trainer, TrainingConfig

WORDS_A = ["heart", "normal", "effusion"]
WORDS_B = ["lungs", "clear", "no", "pneumothorax", "seen"]


def tiny_model(words, seed, **overrides):
    torch.manual_seed(seed)
    settings = {"knowledge_source": "random", "d_model": 32, "num_heads": 2, "d_ff": 32, "d_knowledge": 16,
                "num_encoder_layers": 1, "num_decoder_layers": 1}
    config = small_config(**{**settings, **overrides})
    return CKNet(config, ReportTokenizer(words))


def consistent(folder):
    """Load a saved tiny model; it must be model A or model B whole, never a mix."""
    model = CKNet.from_pretrained(folder)
    words = model.tokenizer.words
    tag = float(model.lm_head.bias[0].detach())  # the writer sets it to the vocabulary's size
    assert (words, tag) in ((sorted(WORDS_A), 7.0), (sorted(WORDS_B), 9.0)), (words, tag)
    return words


WRITER = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    from test_reliability import tiny_model, WORDS_A, WORDS_B
    models = []
    for words, seed in ((WORDS_A, 0), (WORDS_B, 1)):
        model = tiny_model(words, seed)
        with torch.no_grad():
            model.lm_head.bias[0] = model.tokenizer.vocab_size
        models.append(model)
    print("ready", flush=True)
    i = 0
    while True:
        models[i % 2].save_pretrained({folder!r}, overwrite=True)
        i += 1
        time.sleep(0.02)
""")


def start_writer(folder):
    script = WRITER.format(tests=str(REPO / "tests"), folder=str(folder))
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


@pytest.mark.slow
def test_a_save_killed_at_any_moment_leaves_the_old_model_or_the_new_one(tmp_path):
    folder = tmp_path / "model"
    tiny_model(WORDS_A, 0).save_pretrained(folder)
    with torch.no_grad():  # the first one too carries its tag
        model = CKNet.from_pretrained(folder)
        model.lm_head.bias[0] = 7.0
        model.save_pretrained(folder, overwrite=True)
    rng = random.Random(0)
    for _ in range(5):
        writer = start_writer(folder)
        time.sleep(rng.uniform(0.05, 1.0))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        consistent(folder)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model"]
    CKNet.from_pretrained(folder).save_pretrained(folder, overwrite=True)  # removes what the killed left
    assert not [p.name for p in tmp_path.iterdir() if p.name != "model"], leftovers


@pytest.mark.slow
def test_a_reader_racing_a_writer_never_gets_a_mix(tmp_path):
    folder = tmp_path / "model"
    writer = start_writer(folder)
    try:
        while not (folder / MARKER).is_file():
            time.sleep(0.01)
        seen = {tuple(consistent(folder)) for _ in range(40)}
    finally:
        writer.kill()
        writer.wait()
    assert seen  # every one of the 40 loads was A or B whole


def test_two_writers_cannot_both_create_a_model(tmp_path):
    script = textwrap.dedent("""
        import sys, time
        sys.path.insert(0, {tests!r})
        from test_reliability import tiny_model
        model = tiny_model(["a", "b"], 0)
        while time.time() < {start}:
            time.sleep(0.001)
        try:
            model.save_pretrained({folder!r})
            print("saved")
        except FileExistsError:
            print("refused")
    """)
    start = time.time() + 8
    code = script.format(tests=str(REPO / "tests"), folder=str(tmp_path / "m"), start=start)
    writers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    outcomes = sorted(w.communicate(timeout=300)[0].strip() for w in writers)
    assert outcomes == ["refused", "saved"]


def test_a_checkpoint_write_killed_leaves_the_last_one_and_its_temporary_file_goes(tmp_path):
    target = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 1}, target)
    script = textwrap.dedent(f"""
        import os, signal, torch
        from pathlib import Path
        from cknet.persistence.files import write_atomic

        def write(tmp):
            torch.save({{"epoch": 2, "weights": torch.zeros(1000)}}, tmp)
            os.kill(os.getpid(), signal.SIGKILL)  # killed after writing, before the rename

        write_atomic(Path({str(target)!r}), write)
    """)
    subprocess.run([sys.executable, "-c", script], timeout=120)
    stale = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(stale) == 1 and torch.load(target, weights_only=True) == {"epoch": 1}
    write_atomic(target, lambda tmp: torch.save({"epoch": 3}, tmp))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    assert torch.load(target, weights_only=True) == {"epoch": 3}


def test_files_get_the_mode_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        tiny_model(WORDS_A, 0).save_pretrained(tmp_path / "m")
        write_atomic(tmp_path / "scores.json", lambda tmp: open(tmp, "w").write("{}"))
    finally:
        os.umask(old)
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()} == {0o644}
    assert (tmp_path / "scores.json").stat().st_mode & 0o777 == 0o644


def test_no_command_writes_into_a_folder_of_another_kind(tmp_path, iu_annotation):
    model = tiny_model(WORDS_A, 0)
    model.save_pretrained(tmp_path / "model")
    tokenizer = (tmp_path / "model" / "tokenizer.json").read_bytes()
    annotation = tmp_path / "annotation.json"
    annotation.write_text(json.dumps({"train": iu_annotation["train"][:4], "val": iu_annotation["val"][:2]}))
    assert main(["train", "--annotation", str(annotation), "--output", str(tmp_path / "model"), "--quiet",
                 "--device", "cpu"]) == 1
    assert (tmp_path / "model" / "tokenizer.json").read_bytes() == tokenizer
    save_folder(tmp_path / "run", "run", lambda folder: (folder / "run.json").write_text("{}"))
    with pytest.raises(FileExistsError, match="a training run, not a saved CKNet model"):
        model.save_pretrained(tmp_path / "run", overwrite=True)
    with pytest.raises(ValueError, match="a training run, not a saved CKNet model"):
        CKNet.from_pretrained(tmp_path / "run")
    assert folder_kind(tmp_path / "run") == "run" and folder_kind(tmp_path / "model") == "model"


def test_a_run_killed_before_its_first_checkpoint_resumes(tmp_path, monkeypatch, iu_annotation):
    from cknet.training import resume, train

    annotation = tmp_path / "annotation.json"
    entries = [dict(e, image_path=[e["image_path"][0]]) for e in iu_annotation["train"][:6]]
    annotation.write_text(json.dumps({"train": entries[:4], "val": entries[4:]}))
    images = tmp_path / "images"
    for entry in entries:
        (images / entry["image_path"][0]).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((64, 64), 128, np.uint8)).save(images / entry["image_path"][0])
    config = small_config(knowledge_source="random", num_views=1, d_model=32, num_heads=2, d_ff=32,
                          d_knowledge=16, num_encoder_layers=1, num_decoder_layers=1)
    recipe = TrainingConfig(epochs=1, batch_size=2, num_workers=0, eval_num_beams=1)

    def killed(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", killed)
    with pytest.raises(KeyboardInterrupt):
        train(config, recipe, annotation, tmp_path / "run", device="cpu", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, recipe, annotation, tmp_path / "again", device="cpu", progress=False)
    monkeypatch.undo()
    result = resume(tmp_path / "run", device="cpu", progress=False)
    assert result.best_epoch == 1 and (tmp_path / "run" / "checkpoint.pt").is_file()
    # starting a run that never finished an epoch again replaces it, without ceremony
    result = train(config, recipe, annotation, tmp_path / "again", device="cpu", progress=False)
    assert result.best_epoch == 1 and (tmp_path / "again" / "checkpoint.pt").is_file()
    with pytest.raises(FileExistsError, match="already holds a run"):  # a run with an epoch is kept
        train(config, recipe, annotation, tmp_path / "again", device="cpu", progress=False)


@pytest.mark.parametrize("content, match", [(b"", "is empty"), (b"not a zip", "unreadable")])
def test_a_broken_checkpoint_says_what_to_do(tmp_path, content, match):
    model = tiny_model(WORDS_A, 0)
    trainer = Trainer(model, TrainingConfig(num_workers=0), [], [], tmp_path / "run", device="cpu",
                      progress=False)
    (tmp_path / "run" / "checkpoint.pt").write_bytes(content)
    with pytest.raises(ValueError, match=f"{match}.*restart the run"):
        trainer.load_checkpoint(tmp_path / "run" / "checkpoint.pt")


def test_a_pickled_checkpoint_is_refused_without_running_it(tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    trainer = Trainer(tiny_model(WORDS_A, 0), TrainingConfig(num_workers=0), [], [], tmp_path / "run",
                      device="cpu", progress=False)
    (tmp_path / "run" / "checkpoint.pt").write_bytes(pickle.dumps({"model": Payload()}))
    with pytest.raises(ValueError, match="not a cknet checkpoint") as error:
        trainer.load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert "weights_only=False" not in str(error.value) and not (tmp_path / "pwned").exists()


def test_a_failed_checkpoint_write_names_the_file(tmp_path):
    trainer = Trainer(tiny_model(WORDS_A, 0), TrainingConfig(num_workers=0), [], [], tmp_path / "run",
                      device="cpu", progress=False)
    (tmp_path / "run").rename(tmp_path / "gone")  # the folder vanished under the run
    with pytest.raises(OSError, match="could not write the checkpoint .*checkpoint.pt"):
        trainer.save_checkpoint(1)


@pytest.mark.parametrize("options", [dict(num_beams=1), dict(num_beams=3), dict(do_sample=True)])
def test_nan_never_turns_into_a_silent_report(options):
    model = tiny_model(WORDS_A, 0).eval()
    images = torch.randn(2, 2, 3, 64, 64)
    images[1, 0, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match=r"images holds NaN or infinite values \(studies \[1\]"):
        model.generate(images, **options)
    ids, _ = model.tokenizer.encode_batch(["heart normal", "effusion"])
    with pytest.raises(ValueError, match="NaN"):
        model(images, ids)
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="scores of token 1 hold NaN"):
        model.generate(torch.randn(2, 2, 3, 64, 64), **options)


def test_nan_in_the_normalisation_or_the_saved_weights_is_named(tmp_path):
    from safetensors.torch import load_file, save_file

    with pytest.raises(ValueError, match="image_mean and image_std must be finite"):
        CKNetConfig(image_mean=(float("nan"), 0.5, 0.5))
    model = tiny_model(WORDS_A, 0)
    model.save_pretrained(tmp_path / "m")
    state = load_file(tmp_path / "m" / "model.safetensors")
    state["transformer.decoder_norm.weight"][3] = float("inf")
    save_file(state, tmp_path / "m" / "model.safetensors")
    with pytest.raises(ValueError, match="holds NaN or infinite values in 1 tensor.*decoder_norm"):
        CKNet.from_pretrained(tmp_path / "m")


def test_a_diverged_model_is_never_saved_over_a_good_one(tmp_path):
    good = tiny_model(WORDS_A, 0).eval()
    good.save_pretrained(tmp_path / "m")
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
    diverged = tiny_model(WORDS_A, 0)
    with torch.no_grad():
        diverged.lm_head.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"refusing to save .*in 1 tensor\(s\): lm_head.weight"):
        diverged.save_pretrained(tmp_path / "m", overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left behind
    CKNet.from_pretrained(tmp_path / "m")  # still loads


def test_float64_weights_beyond_float32_are_named_after_the_cast(tmp_path):
    from safetensors.torch import load_file, save_file

    tiny_model(WORDS_A, 0).save_pretrained(tmp_path / "m")
    state = load_file(tmp_path / "m" / "model.safetensors")
    state["lm_head.bias"] = state["lm_head.bias"].double()
    state["lm_head.bias"][0] = 1e300  # finite in float64, inf in the model's float32
    save_file(state, tmp_path / "m" / "model.safetensors")
    with pytest.raises(ValueError, match=r"cast to the model's types\) holds NaN or infinite .*lm_head.bias"):
        CKNet.from_pretrained(tmp_path / "m")


def test_weights_of_another_kind_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    tiny_model(WORDS_A, 0).save_pretrained(tmp_path / "m")
    state = load_file(tmp_path / "m" / "model.safetensors")
    state["lm_head.weight"] = state["lm_head.weight"].to(torch.int32)
    save_file(state, tmp_path / "m" / "model.safetensors")
    with pytest.raises(ValueError, match="dtype mismatch.*lm_head.weight"):
        CKNet.from_pretrained(tmp_path / "m")


def test_a_mistyped_folder_is_not_sent_to_the_hub(tmp_path, monkeypatch):
    (tmp_path / "runs" / "iu_best").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no such folder: runs/typo_best \(runs/ holds iu_best\)"):
        CKNet.from_pretrained("runs/typo_best")


def write_studies(folder, count, bad):
    """Single-view study folders; ``bad`` of them hold an unreadable image."""
    for i in range(count):
        study = folder / f"s{i:02d}"
        study.mkdir(parents=True)
        if i in bad:
            (study / "0.png").write_bytes(b"not a png")
        else:
            Image.fromarray(np.full((64, 64), 40 + i, np.uint8)).save(study / "0.png")
    return sorted(folder.iterdir())


def test_generate_keeps_finished_work_and_can_skip_bad_images(tmp_path, capsys):
    tiny_model(WORDS_A, 0, num_views=1).save_pretrained(tmp_path / "model")
    studies = [str(p) for p in write_studies(tmp_path / "studies", 7, bad={5})]
    common = ["generate", "--model", str(tmp_path / "model"), "--batch-size", "2", "--quiet",
              "--max-new-tokens", "3", "--device", "cpu"]
    assert main([*common, *studies, "--output", str(tmp_path / "a.json")]) != 0
    err = capsys.readouterr().err
    assert "s05" in err and "not a readable image" in err and "--skip-bad-images" in err
    kept = json.loads((tmp_path / "a.json").read_text())
    assert [r["id"] for r in kept] == studies[:4]  # the two batches before the bad study
    assert main([*common, *studies, "--output", str(tmp_path / "b.json"), "--skip-bad-images"]) == 0
    assert "skipped 1 of 7 studies" in capsys.readouterr().err
    assert [r["id"] for r in json.loads((tmp_path / "b.json").read_text())] == studies[:5] + studies[6:]
    with pytest.raises(SystemExit):
        main([*common, studies[0], "--batch-size", "0"])
    assert "expected a positive integer, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("records, match", [
    ("[{", "is not a readable JSON file"),
    ("[]", "holds no record"),
    ('[{"id": "a", "prediction": 3, "reference": "x"}]', r"record 0 \(id 'a'\): 'prediction' must be text"),
    ('[{"id": "a", "prediction": "x", "reference": " "}]', "the reference is empty"),
    ('[{"id": "a", "prediction": "x"}]', "missing reference"),
    ('[{"id": "a", "prediction": "x", "reference": "y"}, {"id": "b", "prediction": "x", "reference": "y"},'
     ' {"id": "a", "prediction": "z", "reference": "w"}]', r"gives 1 id\(s\) more than once, e.g. \['a'\]"),
])
def test_evaluate_names_the_record_at_fault(tmp_path, capsys, records, match):
    (tmp_path / "p.json").write_text(records)
    assert main(["evaluate", "--predictions", str(tmp_path / "p.json")]) == 1
    assert __import__("re").search(match, capsys.readouterr().err)


def test_evaluate_checks_its_output_folder_before_scoring(tmp_path, capsys):
    (tmp_path / "p.json").write_text('[{"id": "a", "prediction": "x", "reference": "y"}]')
    assert main(["evaluate", "--predictions", str(tmp_path / "p.json"), "--output",
                 str(tmp_path / "no" / "s.json")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", "--predictions", str(tmp_path / "p.json"), "--output", str(tmp_path / "x.json"),
                 "--per-report", str(tmp_path / "." / "x.json")]) == 1
    assert "--output and --per-report are the same file" in capsys.readouterr().err
    assert main(["evaluate", "--predictions", str(tmp_path / "p.json"), "--output",
                 str(tmp_path / "p.json"), "--overwrite"]) == 1
    assert "is one of the command's inputs" in capsys.readouterr().err
    assert (tmp_path / "p.json").read_text().startswith("[")
    assert not (tmp_path / "x.json").exists()


def test_evaluate_reads_a_csv_with_a_byte_order_mark(tmp_path):
    from cknet.evaluation import read_records

    (tmp_path / "p.csv").write_bytes("\ufeffid,prediction,reference\na,no effusion,no effusion\n".encode())
    assert read_records(tmp_path / "p.csv", ("id", "prediction", "reference")) == [
        {"id": "a", "prediction": "no effusion", "reference": "no effusion"}]
    (tmp_path / "r.csv").write_bytes("\ufeffid,reference\na,x\nb,y\nb,z\n".encode())
    with pytest.raises(ValueError, match=r"more than once, e.g. \['b'\]"):
        read_records(tmp_path / "r.csv", ("id", "reference"))


def test_files_that_are_not_what_they_claim_are_named(tmp_path):
    from cknet.tokenizers import load_tokenizer

    model = tiny_model(WORDS_A, 0)
    model.save_pretrained(tmp_path / "m")
    tokenizer = json.loads((tmp_path / "m" / "tokenizer.json").read_text())
    (tmp_path / "m" / "tokenizer.json").write_text(json.dumps({**tokenizer, "words": 5}))
    with pytest.raises(ValueError, match=r"tokenizer.json is not a ReportTokenizer file: 'words' must be"):
        load_tokenizer(tmp_path / "m" / "tokenizer.json")
    (tmp_path / "m" / "config.json").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ValueError, match="config.json is not UTF-8 text"):
        CKNet.from_pretrained(tmp_path / "m")
    graph = KnowledgeGraphModel(KnowledgeGraph(["a", "b"], [(0, 1)]), "resnet18", 16)
    graph.save_pretrained(tmp_path / "g")
    (tmp_path / "g" / "graph_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="graph_model.safetensors is not a readable safetensors file"):
        KnowledgeGraphModel.from_pretrained(tmp_path / "g")
    graph.save_pretrained(tmp_path / "g", overwrite=True)
    (tmp_path / "g" / "graph_model.json").write_text('{"type": "KnowledgeGraphModel", "backbone": 3}')
    with pytest.raises(ValueError, match="graph_model.json: a graph-model config holds"):
        KnowledgeGraphModel.from_pretrained(tmp_path / "g")


def test_inputs_of_the_wrong_kind_are_refused_with_their_name(iu_tokenizer):
    from cknet.data.images import load_image

    model = tiny_model(WORDS_A, 0)
    with pytest.raises(ValueError, match="images holds no study"):
        model.generate(torch.zeros(0, 2, 3, 64, 64))
    with pytest.raises(ValueError, match=r"has shape \(8, 8, 2\)"):
        load_image(np.zeros((8, 8, 2), np.uint8))
    graph = KnowledgeGraph(["a", "b", "c"], [(0, 1)])
    graph.edges.append((1, 7))  # edited by hand after it was checked
    with pytest.raises(ValueError, match="edge index 7 is out of range for 3 nodes"):
        CKNet(small_config(), iu_tokenizer, graph)
    with pytest.raises(ValueError, match="token ids must be integers, got 2.5"):
        iu_tokenizer.decode([4, 2.5])
    with pytest.raises(ValueError, match="references must be a list of report texts, got str"):
        nlg_scores("abc", "abd")
    with pytest.raises(ValueError, match="not one string"):
        CheXpertLabeler().label("no effusion")
    with pytest.raises(ValueError, match="dataset must be one of"):
        nlg_scores(["a"], ["a"], dataset="chexpert")
    with pytest.warns(UserWarning, match="an image of 1x1 px is enlarged"):
        model.generate([[np.zeros((1, 1), np.uint8)] * 2], max_new_tokens=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder = require(SAMPLES / "iu_xray" / "CXR7_IM-2263")
        model.generate([folder], max_new_tokens=2)  # a real radiograph: no warning


def test_loading_to_cuda_without_a_gpu_says_so(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    tiny_model(WORDS_A, 0).save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="CUDA is not available"):
        CKNet.from_pretrained(tmp_path / "m", map_location="cuda")


def test_a_saved_text_encoder_model_without_its_folder_is_named(tmp_path, tiny_bert_dir):
    from cknet.tokenizers import PretrainedReportTokenizer

    tokenizer = PretrainedReportTokenizer.from_pretrained(tiny_bert_dir)
    config = small_config(text_encoder=str(tiny_bert_dir), knowledge_source="none")
    CKNet(config, tokenizer).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "text_encoder" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="not its text_encoder/ folder"):
        CKNet.from_pretrained(tmp_path / "m")


@pytest.mark.parametrize("field", ["lr_visual", "lr_rest", "lr_text_encoder", "lr_decay", "weight_decay",
                                   "grad_clip", "label_smoothing", "scst_temperature"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_training_settings_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"TrainingConfig.{field} must be a finite number"):
        TrainingConfig(**{field: value})


@pytest.mark.parametrize("option", ["length_penalty", "temperature", "top_p"])
def test_non_finite_decoding_options_are_refused_by_name(option):
    model = tiny_model(WORDS_A, 0).eval()
    extra = {"do_sample": True} if option != "length_penalty" else {}
    with pytest.raises(ValueError, match=f"{option} must be a finite number, got nan"):
        model.generate(torch.randn(1, 2, 3, 64, 64), max_new_tokens=3, **{option: float("nan")}, **extra)


@pytest.mark.parametrize("content, match", [
    ('{"train": [3]}', r"train\[0\] is a int, not an entry"),
    ('{"train": ["CXR1"]}', r"train\[0\] is a str, not an entry"),
    ('{"train": [{"id": "a", "report": "x", "image_path": "a/0.png"}]}',
     r"train\[0\]: image_path must be a list of relative paths"),
    ('{"train": [{"id": "a", "report": "x", "image_path": ["a/0.png"]}], '
     '"test": [{"id": "a", "report": "y", "image_path": ["b/0.png"]}]}',
     r"test\[0\]: the id 'a' is given twice \(also in train\[0\]\)"),
])
def test_malformed_annotations_are_named_by_entry(tmp_path, content, match):
    from cknet.data.annotation import read_annotation

    (tmp_path / "annotation.json").write_text(content)
    with pytest.raises(ValueError, match=match):
        read_annotation(tmp_path / "annotation.json")


def test_an_annotation_that_is_not_utf8_is_named(tmp_path):
    from cknet.data.annotation import read_annotation

    (tmp_path / "annotation.json").write_bytes('{"train": [{"id": "é"}]}'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"annotation.json is not UTF-8 text"):
        read_annotation(tmp_path / "annotation.json")


@pytest.mark.parametrize("text, match", [
    ("study_id,Edema,Pneumonia\n1,1.0\n", r"line 2: 2 cells where the header has 3"),
    ("study_id,Edema,Pneumonia\n1,1.0,0,1\n", r"line 2: 4 cells where the header has 3"),
    ("study_id,Edema\n1,1\n2,0\n1,-1\n", r"line 4: the id '1' is given twice \(also on line 2\)"),
])
def test_label_csv_rows_that_do_not_fit_are_named(tmp_path, text, match):
    from cknet.data.labels import load_label_csv

    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_label_csv(tmp_path / "labels.csv")


def test_a_mesh_csv_with_a_short_row_or_a_bom_is_read_or_named(tmp_path):
    from cknet.data.labels import load_mesh_labels

    (tmp_path / "mesh.csv").write_bytes("\ufeffid,split,mesh,problems\na,train,Cardiomegaly,x\n".encode())
    ids, splits, labels = load_mesh_labels(tmp_path / "mesh.csv")
    assert ids == ["a"] and splits == ["train"] and labels.sum() == 1
    (tmp_path / "short.csv").write_text("id,split,mesh,problems\na,train\n")
    with pytest.raises(ValueError, match=r"short.csv, line 2: 2 cells where the header has 4"):
        load_mesh_labels(tmp_path / "short.csv")


def test_backbone_weights_that_need_unpickling_are_refused_without_suggesting_it(tmp_path):
    from cknet.modules.visual import Backbone

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    torch.save({"conv1.weight": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="not a plain state dict") as caught:
        Backbone("resnet18", tmp_path / "evil.pth")
    assert "weights_only=False" not in str(caught.value) and "safetensors" in str(caught.value)
    assert not (tmp_path / "ran").exists()


def test_a_torch_file_that_would_inflate_far_beyond_its_size_is_refused_before_reading(tmp_path):
    import zipfile

    from cknet.modules.visual import Backbone

    with zipfile.ZipFile(tmp_path / "bomb.pth", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * (64 * 1024 * 1024))  # 64 MB of zeros, ~64 KB on disk
    with pytest.raises(ValueError, match=r"would inflate to 67 MB .*refused before reading"):
        Backbone("resnet18", tmp_path / "bomb.pth")


@pytest.mark.parametrize("device, match", [
    ("tpu", "unknown device 'tpu'"), ("cpu:7", "the CPU takes no index"),
    ("cuda:3", "CUDA is not available|has 1 CUDA device|has [0-9]+ CUDA device"),
])
def test_a_device_this_machine_lacks_is_named_not_blamed_on_a_file(tmp_path, capsys, device, match):
    if device == "cuda:3" and torch.cuda.device_count() > 3:
        pytest.skip("this machine has a cuda:3")
    tiny_model(WORDS_A, 0).save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match=match) as caught:
        CKNet.from_pretrained(tmp_path / "m", map_location=device)
    assert "safetensors" not in str(caught.value)
    assert main(["generate", "--model", str(tmp_path / "m"), str(tmp_path / "x.png"), "--device", device,
                 "--quiet"]) == 1
    assert __import__("re").search(match, capsys.readouterr().err)


def test_more_beams_than_memory_holds_are_named_not_a_raw_allocation_error():
    model = tiny_model(WORDS_A, 0).eval()
    with pytest.raises(ValueError, match=r"num_beams is 100,000,000, past the 1,024 cknet allows"):
        model.generate(torch.randn(1, 2, 3, 64, 64), num_beams=100_000_000, max_new_tokens=3)


def test_a_full_disk_is_named_and_the_previous_model_stays(tmp_path, monkeypatch):
    import safetensors.torch

    model = tiny_model(WORDS_A, 0)
    model.save_pretrained(tmp_path / "m")
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}

    def disk_full(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"\0" * 100)
        raise safetensors.SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(OSError, match=r"could not write .*model.safetensors .*MB are free on its disk"):
        model.save_pretrained(tmp_path / "m", overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.mark.parametrize("content, match", [
    ('{"model": {"epochs": 5}}', r"\['epochs'\] under 'model' are training settings: move them under"),
    ('{"training": {"d_model": 64}}', r"\['d_model'\] under 'training' are model settings"),
    ('{"model": {"d_modle": 64}}', r"recipe.json: .*d_modle"),
    ('{"model": ', r"recipe.json is not valid JSON"),
    ('{"model": [1]}', r"a recipe is"),
])
def test_malformed_recipes_are_named(tmp_path, content, match):
    from cknet.training import load_recipe

    (tmp_path / "recipe.json").write_text(content)
    with pytest.raises(ValueError, match=match):
        load_recipe(tmp_path / "recipe.json")


def test_a_run_json_that_is_not_an_object_is_named(tmp_path):
    from cknet.persistence.folders import save_folder
    from cknet.training import resume

    save_folder(tmp_path / "run", "run", lambda folder: (folder / "run.json").write_text("[1, 2]"))
    with pytest.raises(ValueError, match=r"run.json is not a run description: expected an object"):
        resume(tmp_path / "run")


@pytest.mark.parametrize("path", ["/etc/passwd", "../../secret.png", "a/../../b.png", "~/x.png"])
def test_annotation_image_paths_leaving_the_image_folder_are_refused_unless_allowed(tmp_path, monkeypatch,
                                                                                     path):
    from cknet.data.annotation import read_annotation

    (tmp_path / "annotation.json").write_text(json.dumps(
        {"train": [{"id": "a", "report": "x", "image_path": ["a/0.png", path]}]}))
    with pytest.raises(ValueError, match=r"train\[0\]: the image path .* leaves the image folder"):
        read_annotation(tmp_path / "annotation.json")
    allowed = read_annotation(tmp_path / "annotation.json", allow_outside=True)
    assert allowed["train"][0]["image_path"][1] == path
    monkeypatch.setenv("CKNET_ALLOW_OUTSIDE_IMAGES", "1")
    assert read_annotation(tmp_path / "annotation.json")["train"][0]["id"] == "a"


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    from cknet.data.images import load_image

    Image.new("L", (3000, 3000)).save(tmp_path / "big.png")  # 9 MP, compresses to a few KB
    monkeypatch.setattr("cknet.data.images.MAX_IMAGE_PIXELS", 4_000_000)
    with pytest.raises(ValueError, match=r"big.png is 3000 x 3000 pixels, more than the 4,000,000"):
        load_image(tmp_path / "big.png")
    monkeypatch.setenv("CKNET_MAX_IMAGE_PIXELS", "10000000")  # the user raises it
    assert load_image(tmp_path / "big.png").shape == (3, 3000, 3000)


def test_a_symlink_loop_among_images_is_named_as_such(tmp_path):
    from cknet.data.images import load_image

    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    with pytest.raises(FileNotFoundError, match=r"a.png is a symbolic link that cannot be followed"):
        load_image(tmp_path / "a.png")


def test_a_graph_too_large_for_the_gcn_says_how_large_before_allocating():
    from cknet.modules.graph_encoder import KnowledgeGraphEncoder

    graph = KnowledgeGraph([f"n{i}" for i in range(100_000)])
    with pytest.raises(ValueError, match=r"100,000 nodes needs a dense \(100,001 x 100,001\) GCN adjacency "
                                         r"of 37.3 GiB, more than the 2 GiB"):
        KnowledgeGraphEncoder(graph, 64, 16)
