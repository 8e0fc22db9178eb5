//! boveda cli (in progress).
