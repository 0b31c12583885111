"""The web page (`legsleeve web`, the legsleeve-web service): a process of its own, a client of the control socket.
Needs the `web` extra (Bottle, waitress); nothing on the sleeve's control path imports this package."""
