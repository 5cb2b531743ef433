"""Market data: Binance's kline formats and archive files, candles as frames."""
