"""The next-candle model: data preparation, network, training, evaluation, artifacts, inference.

Modules by responsibility (import the one you need; only `network`, `training`, `artifacts`
and `backtest` import TensorFlow, and only when called):

* `dataset`: windows, log-ratio targets, temporal split with gaps, scalers fitted on train rows
* `network`: the Keras multi-task LSTM
* `training`: `train_model(candles, TrainConfig, progress) -> TrainResult`
* `baselines`, `metrics`, `evaluation`: the model beside persistence, mean drift and an EMA
* `artifacts`: `save_model` / `load_model` of versioned folders
* `inference`: `LoadedModel.predict_next` / `predict_many`, a NumPy forward pass (no `model.predict`)
* `backtest`: walk-forward, rolling-origin folds
* `report`: tables and the leakage alarm
* `cli`: `candlecast train | evaluate | backtest`
"""
