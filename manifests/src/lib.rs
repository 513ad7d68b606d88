//! OrbitLab manifests: the typed, validated form of everything a person
//! declares. Pure: no file or network I/O happens in this crate.
