"""vibebox's dashboard (Textual); all VM logic lives in ``vibebox_core``."""
