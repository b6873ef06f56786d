"""Render a run's result: machine-readable files, and the reports stewards work from."""


def render(result, format: str, *, by: str = "rule", lang: str = "zh") -> str | bytes:
    """One rendering of a run's result: html, xlsx, csv or json (findings)."""
    if format == "html":
        from .html import render_html

        return render_html(result, lang=lang)
    if format == "xlsx":
        from .xlsx import render_xlsx

        return render_xlsx(result, by=by, lang=lang)
    from . import machine

    return machine.findings_csv(result) if format == "csv" else machine.findings_json(result)
