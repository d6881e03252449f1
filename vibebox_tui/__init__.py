"""vibebox's dashboard and host command line; all VM logic lives in ``vibebox_core``."""
