//! IP address management: the allocator behind netd's IpamDriver. Not built yet (issue 3).
