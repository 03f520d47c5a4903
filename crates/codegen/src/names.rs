//! Rust names for model names.

/// `KeyId` → `key_id`, `AWSAccountId` → `aws_account_id`, `ARN` → `arn`.
/// `KeyId` → `keyId`, as CloudTrail names request and response members.
pub fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

pub fn snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == '-' || c == '.' || c == ':' || c == ' ' {
            if !out.ends_with('_') {
                out.push('_');
            }
            continue;
        }
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    escape_keyword(out)
}

/// `accessKeyIdType` → `AccessKeyIdType`.
pub fn pascal(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// An enum value as a variant name: `SYMMETRIC_DEFAULT` → `SymmetricDefault`,
/// `PendingDeletion` → `PendingDeletion`, `tag-key` → `TagKey`, `RSA_2048` → `Rsa2048`.
pub fn variant(value: &str) -> String {
    let mut out = String::new();
    for part in value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
    {
        let all_upper = part.chars().all(|c| !c.is_ascii_lowercase());
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            if all_upper {
                out.extend(chars.map(|c| c.to_ascii_lowercase()));
            } else {
                out.push_str(chars.as_str());
            }
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    if out == "Self" {
        out.push('_');
    }
    out
}

fn escape_keyword(name: String) -> String {
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "box", "break", "const", "continue", "crate", "dyn", "else",
        "enum", "extern", "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match",
        "mod", "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait",
        "true", "type", "unsafe", "use", "where", "while", "yield",
    ];
    if KEYWORDS.contains(&name.as_str()) {
        format!("r#{name}")
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case() {
        assert_eq!(snake("KeyId"), "key_id");
        assert_eq!(snake("AWSAccountId"), "aws_account_id");
        assert_eq!(snake("ARN"), "arn");
        assert_eq!(snake("SecretARN"), "secret_arn");
        assert_eq!(snake("Type"), "r#type");
        assert_eq!(
            snake("GenerateDataKeyPairWithoutPlaintext"),
            "generate_data_key_pair_without_plaintext"
        );
        assert_eq!(snake("ReEncrypt"), "re_encrypt");
        assert_eq!(snake("KMSKeyId"), "kms_key_id");
    }

    #[test]
    fn variants() {
        assert_eq!(variant("SYMMETRIC_DEFAULT"), "SymmetricDefault");
        assert_eq!(variant("PendingDeletion"), "PendingDeletion");
        assert_eq!(variant("tag-key"), "TagKey");
        assert_eq!(variant("RSA_2048"), "Rsa2048");
        assert_eq!(variant("Intelligent-Tiering"), "IntelligentTiering");
    }
}
