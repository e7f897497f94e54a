//! AES-128-CCM with a 4-byte MIC, the one cipher every encrypted format here uses.

use aes::Aes128;
use ccm::aead::generic_array::GenericArray;
use ccm::aead::{Aead, KeyInit, Payload};
use ccm::consts::{U11, U13, U4};
use ccm::Ccm;

/// Decrypts `ciphertext_and_mic` (the MIC is its last 4 bytes). `None` when
/// the MIC does not match: wrong key, wrong MAC in the nonce, or tampering.
/// Only nonces of 11 bytes (pvvx/ATC) and 13 bytes (BTHome) occur.
pub(crate) fn open(
    key: &[u8; 16],
    nonce: &[u8],
    aad: &[u8],
    ciphertext_and_mic: &[u8],
) -> Option<Vec<u8>> {
    let key = GenericArray::from_slice(key);
    let payload = Payload {
        msg: ciphertext_and_mic,
        aad,
    };
    match nonce.len() {
        11 => Ccm::<Aes128, U4, U11>::new(key)
            .decrypt(GenericArray::from_slice(nonce), payload)
            .ok(),
        13 => Ccm::<Aes128, U4, U13>::new(key)
            .decrypt(GenericArray::from_slice(nonce), payload)
            .ok(),
        _ => None,
    }
}

/// The inverse of [`open`], for tests that need encrypted frames the
/// specifications publish no example of.
#[cfg(test)]
pub(crate) fn seal(key: &[u8; 16], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let key = GenericArray::from_slice(key);
    let payload = Payload {
        msg: plaintext,
        aad,
    };
    let out = match nonce.len() {
        11 => Ccm::<Aes128, U4, U11>::new(key).encrypt(GenericArray::from_slice(nonce), payload),
        13 => Ccm::<Aes128, U4, U13>::new(key).encrypt(GenericArray::from_slice(nonce), payload),
        _ => panic!("unsupported nonce length"),
    };
    out.expect("CCM encryption of a short message cannot fail")
}
