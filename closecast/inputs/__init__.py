"""Data in: watchlists, tickers, calendars, price files, their validation and the price store."""
