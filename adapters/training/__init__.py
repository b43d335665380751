"""Training and evaluation of task adapters, and the paper's low-resource study.

`run.train_task` trains one method on one task (with early stopping on a dev set) and tests
it; `export.save_outcome` writes the servable artifact; `study.run_study` runs a grid of
tasks x K x methods x seeds; `report.write_report` turns its records into tables and a plot.
"""
