"""The app's own CSS: phone layout for every page, and the stage layout of presenter mode (DESIGN §9).

Layout is done here, on classes the panels put on their columns (``demos.ui.columns``), so a panel keeps one layout:

- ``panel-results``: the column with what a run produces (chat, gallery, transcript);
- ``panel-settings``: a column of settings beside the results;
- ``panel-side``: a column of a run's inputs (prompt, its ``panel-run`` row with Generate) followed by settings.

On phones a side column dissolves (``display: contents``) so its inputs, the results and its settings stack in that
order: the result of a tap is under the thumb, not under 1500 px of sliders. On stage the settings column is one
closed accordion under the results, and the type is sized for the back of a room.
"""
from __future__ import annotations

PHONE_MAX_WIDTH = 640  # px: Gradio stacks columns below this width too

# Phone widths of the Models table's columns (panel, id, model, source, size, state, loaded on), in px.
MODELS_COLUMNS_PX = (70, 120, 150, 210, 90, 150, 90)


def _models_columns() -> str:
    table = "#models-table"
    rules = [f"  {table} .header-table, {table} .virtual-body {{ width: {sum(MODELS_COLUMNS_PX)}px !important; "
             "min-width: 0 !important; }"]
    for index, width in enumerate(MODELS_COLUMNS_PX, start=1):
        cells = (f"{table} .header-table th:nth-child({index}), {table} .sizing-body td:nth-child({index}), "
                 f"{table} .virtual-row > .body-cell:nth-child({index})")
        size = f"{width}px !important"
        rules.append(f"  {cells} {{ width: {size}; min-width: {size}; max-width: {size}; flex: 0 0 {size}; }}")
    return "\n".join(rules)


PHONE = f"""
@media (max-width: {PHONE_MAX_WIDTH}px) {{
  h1 {{ font-size: 20px !important; line-height: 1.2 !important; margin-bottom: 0.2em !important; }}
  .row:has(> .panel-results) {{ flex-direction: column !important; flex-wrap: nowrap !important; }}
  .row:has(> .panel-results) > * {{ min-width: 100% !important; }}
  .row:has(> .panel-results) > .panel-side {{ display: contents !important; }}
  .row:has(> .panel-results) > .panel-side > * {{ order: 0; }}
  .row:has(> .panel-results) > .panel-results {{ order: 1; }}
  .row:has(> .panel-results) > .panel-side > .panel-run ~ *,
  .row:has(> .panel-results) > .panel-settings {{ order: 2; }}
  /* The Models table scrolls sideways with readable columns instead of squeezing each to a letter's width
     (Gradio sizes its header cells and its virtual body's cells separately: both are set). */
{_models_columns()}
}}
"""

# Type for the back of a room: Gradio's theme sizes are 12-16 px; every label here is at least 18 px.
STAGE = """
.gradio-container {
  --text-xxs: 14px; --text-xs: 16px; --text-sm: 18px; --text-md: 20px; --text-lg: 22px; --text-xl: 28px;
  --text-xxl: 34px;
  --body-text-size: 20px; --block-label-text-size: 18px; --block-info-text-size: 18px;
  --block-title-text-size: 20px; --checkbox-label-text-size: 20px; --input-text-size: 20px;
  --prose-text-size: 20px; --section-header-text-size: 20px; --chatbot-text-size: 22px;
  --button-small-text-size: 18px; --button-medium-text-size: 20px; --button-large-text-size: 22px;
  --layout-gap: 12px;
  font-size: 20px !important; max-width: 100% !important;
}
.gradio-container h1 { font-size: 1.6em !important; margin: 0 !important; }
.gradio-container .prose, .gradio-container .message { font-size: 20px !important; line-height: 1.45 !important; }
.gradio-container label, .gradio-container .label-wrap span, .gradio-container [data-testid="block-info"],
.gradio-container .block-label, .gradio-container [role="tab"] { font-size: 18px !important; }
.gradio-container [role="tab"] { font-size: 20px !important; }
.metrics-card, .metrics-card .prose { font-size: 20px !important; }
/* Chat's Compare: prompt, verdict, both answers and their figures in the first screen (1400x1000 and 1080p). The
   presenter tells what Compare does; the page shows it. */
#chat-compare-about { display: none !important; }
/* The boxes hold the question and the start of each answer; the figures under them (model, adapters, draft,
   batch size …: up to five lines on the draft's side) must end above the fold too. */
#chat-compare-left, #chat-compare-right { height: 175px !important; max-height: 175px !important; }
.panel-results .metrics-card, .panel-results .metrics-card .prose {
  font-size: 18px !important; line-height: 1.3 !important;
}
#chat-compare-verdict { font-size: 24px !important; }
/* Settings under the results, one closed accordion wide: the results take the whole width. */
.row:has(> .panel-results) > .panel-settings { flex: 1 1 100% !important; min-width: 100% !important; order: 2; }
.row:has(> .panel-results) > .panel-results { order: 1; }
"""


def css(presenter: bool) -> str:
    """The page's CSS: the phone layout always, the stage layout in presenter mode."""
    return PHONE + (STAGE if presenter else "")
