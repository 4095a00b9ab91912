"""lstm_model: the pure ML core of closecast (windowing, scaling, the Keras LSTM, metrics).

Never imports Prefect. Import submodules directly (``lstm_model.config``,
``lstm_model.forecaster``, ...); nothing here imports TensorFlow eagerly.
"""
