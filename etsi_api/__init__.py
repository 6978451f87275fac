"""HTTP side of qkms: the ETSI GS QKD 014 API as a Flask application."""
