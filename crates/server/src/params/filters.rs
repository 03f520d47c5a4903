//! `ParameterFilters` of DescribeParameters and GetParametersByPath, and the deprecated
//! `Filters` of DescribeParameters.
//!
//! Keys: `Name`, `Type`, `KeyId`, `Path`, `Tier`, `DataType`, `tag:KEY` (DescribeParameters)
//! and `Type`, `KeyId`, `Label` (GetParametersByPath). Options: `Equals` (the default) and
//! `BeginsWith`; `Name` also `Contains`; `Path` takes `OneLevel` (its default) or `Recursive`;
//! `Label` only `Equals`. Several values of one filter match any; several filters must all
//! match. A `tag:` filter without values matches parameters carrying the tag key.

use keyhold_proto::ssm::ParametersFilterKey;
use keyhold_proto::ssm::{ParameterStringFilter, ParameterTier, ParameterType, ParametersFilter};

use super::error::SsmError;
use super::name::{Path, key_of};
use super::param::{Param, Version};

/// Which operation the filters are for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Describe,
    ByPath,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Field {
    Name,
    Type,
    KeyId,
    Path,
    Tier,
    DataType,
    Label,
    Tag(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    Equals,
    BeginsWith,
    Contains,
    OneLevel,
    Recursive,
}

#[derive(Clone, Debug)]
struct Filter {
    field: Field,
    option: Opt,
    values: Vec<String>,
    /// The parsed values of a `Path` filter.
    paths: Vec<Path>,
}

/// A validated set of filters.
#[derive(Clone, Debug, Default)]
pub struct Filters(Vec<Filter>);

impl Filters {
    /// Validates `ParameterFilters` for `operation`.
    pub fn parse(
        filters: Option<Vec<ParameterStringFilter>>,
        operation: Operation,
    ) -> Result<Self, SsmError> {
        let mut out: Vec<Filter> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for f in filters.unwrap_or_default() {
            let field = field_of(&f.key, operation)?;
            if seen.contains(&f.key) {
                return Err(SsmError::DuplicateFilter { key: f.key });
            }
            seen.push(f.key.clone());
            let option = option_of(&field, f.option.as_deref())?;
            let values = f.values.unwrap_or_default();
            if values.is_empty() && !matches!(field, Field::Tag(_)) {
                return Err(SsmError::MissingFilterValues { key: f.key });
            }
            let paths = check_values(&field, &values)?;
            out.push(Filter {
                field,
                option,
                values,
                paths,
            });
        }
        Ok(Self(out))
    }

    /// The deprecated `Filters` of DescribeParameters: `Name` begins with, `Type` and `KeyId`
    /// equal.
    pub fn from_legacy(filters: Vec<ParametersFilter>) -> Result<Self, SsmError> {
        let mut out = Vec::new();
        for f in filters {
            let (field, option) = match f.key {
                ParametersFilterKey::Name => (Field::Name, Opt::BeginsWith),
                ParametersFilterKey::Type => (Field::Type, Opt::Equals),
                ParametersFilterKey::KeyId => (Field::KeyId, Opt::Equals),
            };
            check_values(&field, &f.values)?;
            out.push(Filter {
                field,
                option,
                values: f.values,
                paths: Vec::new(),
            });
        }
        Ok(Self(out))
    }

    /// The labels a `Label` filter asks for, if there is one.
    pub fn labels(&self) -> Option<&[String]> {
        self.0
            .iter()
            .find(|f| f.field == Field::Label)
            .map(|f| f.values.as_slice())
    }

    /// Whether `version` of `param` passes every filter.
    pub fn matches(&self, param: &Param, version: &Version) -> bool {
        self.0.iter().all(|f| f.matches(param, version))
    }
}

impl Filter {
    fn matches(&self, param: &Param, version: &Version) -> bool {
        match &self.field {
            Field::Name => {
                let name = format!("/{}", param.key);
                self.values.iter().any(|v| match self.option {
                    Opt::Contains => name.contains(v.as_str()),
                    Opt::BeginsWith => name.starts_with(&format!("/{}", key_of(v))),
                    _ => name == format!("/{}", key_of(v)),
                })
            }
            Field::Type => self.compare(Some(version.kind.as_str())),
            Field::KeyId => self.compare(version.key_id.as_deref()),
            Field::Tier => self.compare(Some(version.tier.as_str())),
            Field::DataType => self.compare(Some(version.data_type.as_str())),
            Field::Path => {
                let recursive = self.option == Opt::Recursive;
                self.paths.iter().any(|p| p.contains(&param.key, recursive))
            }
            Field::Label => version.labels.iter().any(|l| self.values.contains(l)),
            Field::Tag(key) => {
                let value = param.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v);
                match value {
                    None => false,
                    Some(_) if self.values.is_empty() => true,
                    Some(value) => self.compare(Some(value)),
                }
            }
        }
    }

    fn compare(&self, actual: Option<&str>) -> bool {
        let Some(actual) = actual else {
            return false;
        };
        self.values.iter().any(|v| match self.option {
            Opt::BeginsWith => actual.starts_with(v.as_str()),
            Opt::Contains => actual.contains(v.as_str()),
            _ => actual == v,
        })
    }
}

fn field_of(key: &str, operation: Operation) -> Result<Field, SsmError> {
    let field = match key {
        "Name" => Field::Name,
        "Type" => Field::Type,
        "KeyId" => Field::KeyId,
        "Path" => Field::Path,
        "Tier" => Field::Tier,
        "DataType" => Field::DataType,
        "Label" => Field::Label,
        _ => match key.strip_prefix("tag:") {
            Some(tag) if !tag.is_empty() => Field::Tag(tag.to_owned()),
            _ => return Err(invalid_key(key, operation)),
        },
    };
    let allowed = match operation {
        Operation::Describe => field != Field::Label,
        Operation::ByPath => matches!(field, Field::Type | Field::KeyId | Field::Label),
    };
    if allowed {
        Ok(field)
    } else {
        Err(invalid_key(key, operation))
    }
}

fn invalid_key(key: &str, operation: Operation) -> SsmError {
    SsmError::InvalidFilterKey {
        key: key.to_owned(),
        valid: match operation {
            Operation::Describe => "[Path, Name, Type, KeyId, Tier]",
            Operation::ByPath => "[Type, KeyId, Label]",
        },
    }
}

fn option_of(field: &Field, option: Option<&str>) -> Result<Opt, SsmError> {
    let invalid = |valid| SsmError::InvalidFilterOption {
        option: option.unwrap_or_default().to_owned(),
        valid,
    };
    match field {
        Field::Path => match option {
            None | Some("OneLevel") => Ok(Opt::OneLevel),
            Some("Recursive") => Ok(Opt::Recursive),
            Some(_) => Err(invalid("[Recursive, OneLevel]")),
        },
        Field::Label => match option {
            None | Some("Equals") => Ok(Opt::Equals),
            Some(_) => Err(invalid("[Equals]")),
        },
        Field::Name => match option {
            None | Some("Equals") => Ok(Opt::Equals),
            Some("BeginsWith") => Ok(Opt::BeginsWith),
            Some("Contains") => Ok(Opt::Contains),
            Some(_) => Err(invalid("[BeginsWith, Equals, Contains]")),
        },
        _ => match option {
            None | Some("Equals") => Ok(Opt::Equals),
            Some("BeginsWith") => Ok(Opt::BeginsWith),
            Some(_) => Err(invalid("[BeginsWith, Equals]")),
        },
    }
}

/// Checks the values a field constrains (`Type`, `Tier`, `Path`); returns parsed paths.
fn check_values(field: &Field, values: &[String]) -> Result<Vec<Path>, SsmError> {
    let invalid = |value: &str, valid| SsmError::InvalidFilterValue {
        value: value.to_owned(),
        valid,
    };
    match field {
        Field::Type => {
            if let Some(v) = values.iter().find(|v| ParameterType::parse(v).is_none()) {
                return Err(invalid(v, "[String, StringList, SecureString]"));
            }
        }
        Field::Tier => {
            if let Some(v) = values.iter().find(|v| ParameterTier::parse(v).is_none()) {
                return Err(invalid(v, "[Standard, Advanced, Intelligent-Tiering]"));
            }
        }
        Field::Path => {
            let mut paths = Vec::with_capacity(values.len());
            for v in values {
                let lower = v.to_ascii_lowercase();
                if lower.starts_with("/aws") || lower.starts_with("/ssm") {
                    return Err(SsmError::ReservedPathFilter);
                }
                paths.push(Path::parse(v)?);
            }
            return Ok(paths);
        }
        _ => {}
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::params::param::Stored;

    fn filter(key: &str, option: Option<&str>, values: &[&str]) -> ParameterStringFilter {
        ParameterStringFilter {
            key: key.into(),
            option: option.map(Into::into),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    fn param(name: &str) -> (Param, Arc<Version>) {
        let version = Arc::new(Version {
            number: 1,
            kind: ParameterType::SecureString,
            value: Stored::Sealed(vec![1]),
            description: None,
            allowed_pattern: None,
            key_id: Some("alias/aws/ssm".into()),
            data_type: "text".into(),
            tier: ParameterTier::Standard,
            policies: Vec::new(),
            labels: vec!["prod".into()],
            modified_ms: 0,
            modified_user: String::new(),
        });
        let p = Param {
            arn: String::new(),
            name: name.into(),
            key: key_of(name).into(),
            created_ms: 0,
            revision: 1,
            tags: vec![("team".into(), "core".into())],
            versions: vec![version.clone()],
        };
        (p, version)
    }

    fn matches(filters: Vec<ParameterStringFilter>, name: &str) -> bool {
        let f = Filters::parse(Some(filters), Operation::Describe).unwrap();
        let (p, v) = param(name);
        f.matches(&p, &v)
    }

    #[test]
    fn matching() {
        assert!(matches(vec![filter("Name", None, &["/app/db"])], "/app/db"));
        assert!(matches(vec![filter("Name", None, &["top"])], "top"));
        assert!(matches(
            vec![filter("Name", Some("BeginsWith"), &["/app"])],
            "/app/db"
        ));
        assert!(matches(
            vec![filter("Name", Some("Contains"), &["p/d"])],
            "/app/db"
        ));
        assert!(matches(vec![filter("Type", None, &["SecureString"])], "/a"));
        assert!(!matches(vec![filter("Type", None, &["String"])], "/a"));
        assert!(matches(
            vec![filter("KeyId", Some("BeginsWith"), &["alias/"])],
            "/a"
        ));
        assert!(matches(vec![filter("Path", None, &["/app"])], "/app/db"));
        assert!(!matches(vec![filter("Path", None, &["/app"])], "/app/x/db"));
        assert!(matches(
            vec![filter("Path", Some("Recursive"), &["/app"])],
            "/app/x/db"
        ));
        assert!(matches(vec![filter("tag:team", None, &[])], "/a"));
        assert!(matches(
            vec![filter("tag:team", Some("BeginsWith"), &["co"])],
            "/a"
        ));
        assert!(!matches(vec![filter("tag:owner", None, &[])], "/a"));
        assert!(matches(
            vec![
                filter("Tier", None, &["Standard"]),
                filter("DataType", None, &["text"])
            ],
            "/a"
        ));
    }

    #[test]
    fn validation() {
        let parse = |fs, op| Filters::parse(Some(fs), op).err();
        assert!(matches!(
            parse(vec![filter("Label", None, &["x"])], Operation::Describe),
            Some(SsmError::InvalidFilterKey { .. })
        ));
        assert!(matches!(
            parse(vec![filter("Name", None, &["x"])], Operation::ByPath),
            Some(SsmError::InvalidFilterKey { .. })
        ));
        assert!(matches!(
            parse(
                vec![
                    filter("Type", None, &["String"]),
                    filter("Type", None, &["String"])
                ],
                Operation::Describe
            ),
            Some(SsmError::DuplicateFilter { .. })
        ));
        assert!(matches!(
            parse(
                vec![filter("Path", Some("Equals"), &["/a"])],
                Operation::Describe
            ),
            Some(SsmError::InvalidFilterOption { .. })
        ));
        assert!(matches!(
            parse(
                vec![filter("Label", Some("BeginsWith"), &["a"])],
                Operation::ByPath
            ),
            Some(SsmError::InvalidFilterOption { .. })
        ));
        assert!(matches!(
            parse(vec![filter("Tier", None, &["Gold"])], Operation::Describe),
            Some(SsmError::InvalidFilterValue { .. })
        ));
        assert!(matches!(
            parse(vec![filter("Name", None, &[])], Operation::Describe),
            Some(SsmError::MissingFilterValues { .. })
        ));
        assert_eq!(
            parse(vec![filter("Path", None, &["/aws/x"])], Operation::Describe),
            Some(SsmError::ReservedPathFilter)
        );
        assert_eq!(
            parse(vec![filter("Path", None, &["a/b"])], Operation::Describe),
            Some(SsmError::InvalidPath)
        );
        let f = Filters::parse(
            Some(vec![filter("Label", None, &["prod"])]),
            Operation::ByPath,
        )
        .unwrap();
        assert_eq!(f.labels(), Some(&["prod".to_owned()][..]));
    }
}
