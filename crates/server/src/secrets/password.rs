//! GetRandomPassword, and the CSPRNG draws the service shares (ARN suffixes).
//!
//! AWS's defaults: 32 characters from upper- and lowercase letters, digits and the 32
//! punctuation characters ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~``, at least one of every
//! included type; the space only when asked for. Every character comes from AWS-LC's
//! system generator, drawn without modulo bias.

use keyhold_proto::SensitiveString;
use keyhold_proto::secretsmanager::*;
use zeroize::Zeroizing;

use super::SecretsService;
use super::error::SecretsError;
use crate::context::RequestContext;

const LOWERCASE: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPERCASE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
const PUNCTUATION: &[u8] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const DEFAULT_LENGTH: i64 = 32;

pub async fn get_random_password(
    service: &SecretsService,
    ctx: &RequestContext,
    input: GetRandomPasswordRequest,
) -> Result<GetRandomPasswordResponse, SecretsError> {
    service.authorize_in_account(ctx, "secretsmanager:GetRandomPassword", "*", &[])?;
    let length = usize::try_from(input.password_length.unwrap_or(DEFAULT_LENGTH))
        .map_err(|_| SecretsError::PasswordTooShort)?;
    let exclude = input.exclude_characters.unwrap_or_default();
    let keep = |set: &[u8]| -> Vec<u8> {
        set.iter()
            .copied()
            .filter(|c| !exclude.as_bytes().contains(c))
            .collect()
    };
    let mut types: Vec<Vec<u8>> = Vec::new();
    for (set, excluded) in [
        (LOWERCASE, input.exclude_lowercase),
        (UPPERCASE, input.exclude_uppercase),
        (DIGITS, input.exclude_numbers),
        (PUNCTUATION, input.exclude_punctuation),
    ] {
        if excluded != Some(true) {
            types.push(keep(set));
        }
    }
    types.retain(|t| !t.is_empty());
    let space = input.include_space == Some(true) && !exclude.contains(' ');
    let mut pool: Vec<u8> = types.concat();
    if space {
        pool.push(b' ');
    }
    if pool.is_empty() {
        return Err(SecretsError::NoCharactersLeft);
    }
    let require_each = input.require_each_included_type != Some(false);
    if require_each && length < types.len() {
        return Err(SecretsError::PasswordTooShort);
    }
    let mut password = Zeroizing::new(Vec::with_capacity(length));
    if require_each {
        for set in &types {
            password.push(pick(set)?);
        }
    }
    while password.len() < length {
        password.push(pick(&pool)?);
    }
    shuffle(&mut password)?;
    let text = String::from_utf8(password.to_vec()).map_err(|_| SecretsError::Internal)?;
    Ok(GetRandomPasswordResponse {
        random_password: Some(SensitiveString::new(text)),
    })
}

/// `n` characters drawn uniformly from `alphabet`.
pub fn random_string(alphabet: &[u8], n: usize) -> Result<String, SecretsError> {
    let mut out = String::with_capacity(n);
    for _ in 0..n {
        out.push(char::from(pick(alphabet)?));
    }
    Ok(out)
}

fn pick(set: &[u8]) -> Result<u8, SecretsError> {
    let i = below(set.len())?;
    set.get(i).copied().ok_or(SecretsError::Internal)
}

/// Fisher–Yates, with the same unbiased draws.
fn shuffle(items: &mut [u8]) -> Result<(), SecretsError> {
    for i in (1..items.len()).rev() {
        let j = below(i + 1)?;
        items.swap(i, j);
    }
    Ok(())
}

/// A uniform integer in `0..n` (rejection sampling over 32 random bits).
fn below(n: usize) -> Result<usize, SecretsError> {
    let n = u32::try_from(n).map_err(|_| SecretsError::Internal)?;
    if n == 0 {
        return Err(SecretsError::Internal);
    }
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let mut bytes = [0u8; 4];
        keyhold_crypto::random::fill(&mut bytes).map_err(|_| SecretsError::Internal)?;
        let v = u32::from_le_bytes(bytes);
        if v < zone {
            return usize::try_from(v % n).map_err(|_| SecretsError::Internal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_range_and_cover_it() {
        let mut seen = [false; 7];
        for _ in 0..2000 {
            let v = below(7).unwrap();
            seen[v] = true;
        }
        assert!(seen.iter().all(|s| *s));
        let s = random_string(b"ab", 64).unwrap();
        assert!(s.bytes().all(|b| b == b'a' || b == b'b'));
    }

    #[test]
    fn punctuation_is_awss_32() {
        assert_eq!(PUNCTUATION.len(), 32);
        assert!(PUNCTUATION.iter().all(u8::is_ascii_punctuation));
    }
}
