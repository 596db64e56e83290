//! Plans and journals the rotation of a gateway's secrets (skeleton).
