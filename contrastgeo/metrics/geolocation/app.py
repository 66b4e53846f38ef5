"""The geolocation metric's widget: the app of its Hub Space (`python -m contrastgeo.metrics push`).

Paste one example per row: predicted and true latitude and longitude in degrees, and optionally the predicted and
true place labels (integers; leave both label columns empty in every row to score coordinates only). The metric
is the other .py file in this folder: on the Space it is named after the Space, as
`evaluate.load("<user>/<space>")` expects. evaluate's own `launch_gradio_widget` uses Gradio 3 components, which
Gradio 4 removed, hence this small app.
"""

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read by gradio at import: no calls home

import evaluate  # noqa: E402
import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

COORDINATE_COLUMNS = ["predicted_latitude", "predicted_longitude", "true_latitude", "true_longitude"]
LABEL_COLUMNS = ["predicted_label", "true_label"]
EXAMPLE_ROWS = [[48.8566, 2.3522, 51.5074, -0.1278, 1, 0],  # Paris for a London post: 344 km off
                [51.5072, -0.1276, 51.5074, -0.1278, 0, 0]]


def metric_module_path(folder=None):
    """The metric's .py file beside this app (the folder holds exactly one other module)."""
    folder = Path(folder or Path(__file__).resolve().parent)
    modules = [path for path in folder.glob("*.py") if path.name not in ("app.py", "__init__.py")]
    if len(modules) != 1:
        raise RuntimeError(f"{folder} should hold one metric module beside app.py, found {[p.name for p in modules]}")
    return modules[0]


def score_table(table, module_path=None):
    """The metric's scores of a table with the columns of COORDINATE_COLUMNS (+ LABEL_COLUMNS); ValueError names
    the problem (a missing value, labels in some rows only, a latitude out of range)."""
    table = pd.DataFrame(table).replace("", None)
    missing = [name for name in COORDINATE_COLUMNS if name not in table.columns]
    if missing:
        raise ValueError(f"the table needs the columns {COORDINATE_COLUMNS}; missing {missing}")
    if table.empty:
        raise ValueError("the table has no rows: give one example per row")
    for name in COORDINATE_COLUMNS:
        blank = table.index[table[name].isna()].tolist()
        if blank:
            raise ValueError(f"{name} is empty in row(s) {[index + 1 for index in blank]}")
    labels = table.reindex(columns=LABEL_COLUMNS)
    with_labels = not labels.isna().all().all()
    if with_labels and labels.isna().any().any():
        rows = table.index[labels.isna().any(axis=1)].tolist()
        raise ValueError(f"labels are given in some rows but not in row(s) {[index + 1 for index in rows]}: give a "
                         "predicted and a true label in every row, or none")
    metric = evaluate.load(str(module_path or metric_module_path()), config_name="labels" if with_labels else None)
    coordinates = {name: pd.to_numeric(table[name]).astype(float).tolist() for name in COORDINATE_COLUMNS}
    if not with_labels:
        return metric.compute(**coordinates)
    return metric.compute(**coordinates, predictions=pd.to_numeric(labels["predicted_label"]).astype(int).tolist(),
                          references=pd.to_numeric(labels["true_label"]).astype(int).tolist())


def build_demo(module_path=None):
    def score(table):
        try:
            return score_table(table, module_path)
        except ValueError as error:
            raise gr.Error(str(error)) from None

    with gr.Blocks(title="Geolocation metric") as demo:
        gr.Markdown("# Geolocation metric\nGreat-circle error (haversine, km) and place-label accuracy. One example "
                    "per row; leave the label columns empty to score coordinates only.")
        table = gr.Dataframe(value=EXAMPLE_ROWS, headers=COORDINATE_COLUMNS + LABEL_COLUMNS, column_count=6,
                             datatype="number", interactive=True, label="examples", elem_id="examples")
        button = gr.Button("Score", variant="primary", elem_id="score")
        scores = gr.JSON(label="scores", elem_id="scores")
        button.click(score, inputs=table, outputs=scores)
    return demo


if __name__ == "__main__":
    build_demo().launch()
