"""Everything cknet writes to disk and reads back, in one package:

- `cknet.persistence.folders`: folders written whole, marked with their kind
  (``cknet.json``), read back consistently (`save_folder`, `read_folder`, `check_kind`);
- `cknet.persistence.files`: atomic files, temporary files of killed writers, folder locks;
- `cknet.persistence.weights`: weights in safetensors, finite and strictly checked;
- `cknet.persistence.module_folder`: a module saved as JSON files and one safetensors file;
- `cknet.persistence.model_files` and `cknet.persistence.model_card`: a saved CKNet, its
  marker, warnings and model card;
- `cknet.persistence.checkpoint`: training checkpoints (``weights_only`` torch files);
- `cknet.persistence.hub`: the Hugging Face Hub (hub ids, offline-first loading, no
  remote code).

No pickle of an untrusted file is read anywhere, and no code from a model folder runs.
"""
