"""Console lines of ``sfrt compare`` that say what was applied: dose quantity, vertex dose, alpha/beta."""

from __future__ import annotations

import textwrap

__all__ = ["print_applied"]


def print_applied(report: dict, out=None) -> None:
    """Print the dose quantity (RBE for protons), the meaning of the vertex dose and the alpha/beta used.

    Parameters
    ----------
    report : dict
        A comparison report (:func:`sfrt_engine.run_comparison`); missing keys are skipped.
    out : file, optional
        Defaults to the current ``sys.stdout``.
    """
    from ..reporting import describe_resolved_alpha_beta

    settings = report.get("settings", {})
    quantity = settings.get("dose_quantity")
    if quantity:
        line = f"dose: {quantity['quantity']} [{quantity['unit']}]"
        if quantity.get("rbe", 1.0) != 1.0:
            line += f"; {quantity['model']}"
        print(textwrap.fill(line, 118, subsequent_indent="  "), file=out)
    if settings.get("vertex_dose_meaning"):
        print(textwrap.fill(settings["vertex_dose_meaning"], 118, subsequent_indent="  "), file=out)
    resolved = settings.get("alpha_beta_resolved_gy")
    if resolved:
        text = "alpha/beta used: " + describe_resolved_alpha_beta(resolved)
        print(textwrap.fill(text, 118, subsequent_indent="  "), file=out)
