//! The one check of what a region name looks like, shared by SigV4 (the credential scope)
//! and the server (ARNs, replica regions).

/// Whether `region` is shaped like an AWS region name (`us-east-1`, `us-gov-west-1`): two
/// or three groups of lowercase letters, then a group of digits, joined by `-`, at most 32
/// bytes. Names such as `local` or `us-east-1a` (an availability zone) are not regions.
pub fn is_region_name(region: &str) -> bool {
    let mut parts = region.split('-').peekable();
    let mut count = 0;
    while let Some(part) = parts.next() {
        count += 1;
        let last = parts.peek().is_none();
        let ok = if last {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())
        } else {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase())
        };
        if !ok {
            return false;
        }
    }
    (3..=4).contains(&count) && region.len() <= 32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names() {
        for ok in [
            "us-east-1",
            "us-east-2",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
            "us-isob-east-1",
        ] {
            assert!(is_region_name(ok), "{ok}");
        }
        for bad in [
            "",
            "foo",
            "us",
            "us-east",
            "US-east-1",
            "us-east-1a",
            "us--1",
            "-us-east-1",
            "us-east-1-",
            "a-b-c-d-1",
            "../x-y-1",
            "abcdefghijklmnop-abcdefghijklmn-1",
        ] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }
}
