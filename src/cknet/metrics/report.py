"""`MetricReport`: scores with the settings that produced them (every metric returns one)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field


@dataclass(eq=False)
class MetricReport(Mapping[str, "float | None"]):
    """Scores with the settings that produced them; a read-only mapping of the scores
    (``report["BLEU_4"]``, ``for name in report``, ``dict(report)``, ``len``, ``in``).

    Attributes:
        scores: metric name -> value (None when a metric could not be computed).
        settings: how they were computed (e.g. which references, averaging, policy).
        notes: one-line explanations (e.g. why METEOR is missing).
        table: optional per-item rows (e.g. one per observation).
    """

    scores: dict[str, float | None]
    settings: dict[str, str]
    notes: list[str] = field(default_factory=list)
    table: list[dict] = field(default_factory=list)

    def __getitem__(self, name: str) -> float | None:
        return self.scores[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.scores)

    def __len__(self) -> int:
        return len(self.scores)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {"scores": self.scores, "settings": self.settings, "notes": self.notes,
                "table": self.table}

    def __str__(self) -> str:
        lines = [", ".join(f"{k}: {v}" for k, v in self.settings.items())]
        for name, value in self.scores.items():
            lines.append(f"  {name:<12} {'n/a' if value is None else f'{value:.4f}'}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)
