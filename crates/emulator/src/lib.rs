//! emulator (work in progress).
