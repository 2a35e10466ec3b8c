//! Network drivers (bridge, host, none, overlay, remote) behind one trait. Not built yet (issue 4).
