//! boveda server (in progress).
