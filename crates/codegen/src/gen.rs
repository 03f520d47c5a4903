//! One service model → one Rust module.
//!
//! Every shape resolves to a [`Ty`]. Structures reachable from an operation's input get a
//! twin in `mod wire` whose members are all optional (that is what arrives on the wire) and a
//! `validate` that checks the model's constraints and builds the public structure, whose
//! required members are not optional. Structures reachable from an output are serialized
//! (JSON 1.1) or written as XML (awsQuery).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::{Context, bail};

use crate::model::{Model, Shape};
use crate::names::{lower_camel, pascal, snake, variant};

/// The Rust type a shape resolves to.
#[derive(Clone, Debug)]
enum Ty {
    Str { sensitive: bool },
    Enum(String),
    Int,
    Long,
    Bool,
    Timestamp,
    Blob { sensitive: bool },
    List(Box<Ty>),
    Map(Box<Ty>),
    Struct(String),
}

/// What `validate` does with one wire value on its way to the public value.
#[derive(Debug)]
enum Conv {
    /// Only checked: a statement reading the value through the `&T` binding named `x`,
    /// reporting to the validator. The value (and any collection holding it) is kept as it
    /// is, not rebuilt.
    Check(String),
    /// Rebuilt (an enum parsed, a structure validated): an expression of type
    /// `Option<public type>` consuming the owned value `x`.
    Build(String),
}

/// The generated pieces checking the elements of a collection against their shape's rules.
struct Element {
    /// A `Rules` value expression.
    rules: String,
    /// A method call on `Rules` checking the element `e` (`string_ok(e)`).
    ok: String,
    sensitive: bool,
}

impl Element {
    /// A statement checking every element of the collection `x` (yielded by `x.{iter}()`)
    /// and reporting the collection once, at path `p`, when any breaks a rule.
    fn check(&self, x: &str, iter: &str, p: &str, part: &str) -> String {
        let shown = if self.sensitive {
            "Shown::Hidden".to_owned()
        } else {
            format!("Shown::Owned({x}.render())")
        };
        format!(
            "{{ let r = {}; if !{x}.{iter}().all(|e| r.{}) {{ v.elements({shown}, &{p}, {part}, &r); }} }}",
            self.rules, self.ok
        )
    }
}

pub struct Service<'m> {
    model: &'m Model,
    stem: &'m str,
    prefix: &'m str,
    json: bool,
    input_shapes: BTreeSet<String>,
    output_shapes: BTreeSet<String>,
    patterns: BTreeMap<String, usize>,
}

impl<'m> Service<'m> {
    pub fn new(model: &'m Model, stem: &'m str, prefix: &'m str) -> anyhow::Result<Self> {
        let json = match model.metadata.protocol.as_str() {
            "json" => true,
            "query" => false,
            other => bail!("{stem}: unsupported protocol {other}"),
        };
        let mut svc = Self {
            model,
            stem,
            prefix,
            json,
            input_shapes: BTreeSet::new(),
            output_shapes: BTreeSet::new(),
            patterns: BTreeMap::new(),
        };
        for op in model.operations.values() {
            if let Some(input) = &op.input {
                svc.reach(&input.shape, true)?;
            }
            if let Some(output) = &op.output {
                svc.reach(&output.shape, false)?;
            }
        }
        Ok(svc)
    }

    fn reach(&mut self, name: &str, input: bool) -> anyhow::Result<()> {
        let set = if input {
            &mut self.input_shapes
        } else {
            &mut self.output_shapes
        };
        if !set.insert(name.to_owned()) {
            return Ok(());
        }
        let shape = self.model.shape(name)?;
        let children: Vec<String> = match shape.kind.as_str() {
            "structure" => shape.members.values().map(|m| m.shape.clone()).collect(),
            "list" => shape.member.iter().map(|m| m.shape.clone()).collect(),
            "map" => shape
                .key
                .iter()
                .chain(shape.value.iter())
                .map(|m| m.shape.clone())
                .collect(),
            _ => Vec::new(),
        };
        for child in children {
            self.reach(&child, input)?;
        }
        Ok(())
    }

    fn shape(&self, name: &str) -> anyhow::Result<&'m Shape> {
        self.model.shape(name)
    }

    fn ty(&self, name: &str) -> anyhow::Result<Ty> {
        let shape = self.shape(name)?;
        Ok(match shape.kind.as_str() {
            "string" if shape.enum_values.is_some() => Ty::Enum(pascal(name)),
            "string" => Ty::Str {
                sensitive: shape.sensitive,
            },
            "integer" => Ty::Int,
            "long" => Ty::Long,
            "boolean" => Ty::Bool,
            "timestamp" => Ty::Timestamp,
            "blob" => Ty::Blob {
                sensitive: shape.sensitive,
            },
            "list" => {
                let member = shape
                    .member
                    .as_ref()
                    .with_context(|| format!("list {name} has no member"))?;
                Ty::List(Box::new(self.ty(&member.shape)?))
            }
            "map" => {
                let value = shape
                    .value
                    .as_ref()
                    .with_context(|| format!("map {name} has no value"))?;
                Ty::Map(Box::new(self.ty(&value.shape)?))
            }
            "structure" => Ty::Struct(pascal(name)),
            other => bail!("shape {name}: unsupported type {other}"),
        })
    }

    /// The type of the validated (public) value.
    fn public_ty(ty: &Ty) -> String {
        match ty {
            Ty::Str { sensitive: false } => "String".into(),
            Ty::Str { sensitive: true } => "SensitiveString".into(),
            Ty::Enum(name) | Ty::Struct(name) => name.clone(),
            Ty::Int => "i32".into(),
            Ty::Long => "i64".into(),
            Ty::Bool => "bool".into(),
            Ty::Timestamp => "Timestamp".into(),
            Ty::Blob { sensitive: false } => "Blob".into(),
            Ty::Blob { sensitive: true } => "SensitiveBlob".into(),
            Ty::List(inner) => format!("Vec<{}>", Self::public_ty(inner)),
            Ty::Map(inner) => format!("BTreeMap<String, {}>", Self::public_ty(inner)),
        }
    }

    /// The type as decoded from the wire, before validation (inside `mod wire`).
    fn wire_ty(ty: &Ty) -> String {
        match ty {
            Ty::Enum(_) => "String".into(),
            Ty::Struct(name) => name.clone(),
            Ty::List(inner) => format!("Vec<{}>", Self::wire_ty(inner)),
            Ty::Map(inner) => format!("BTreeMap<String, {}>", Self::wire_ty(inner)),
            other => Self::public_ty(other),
        }
    }

    fn contains_sensitive(&self, ty: &Ty, seen: &mut BTreeSet<String>) -> anyhow::Result<bool> {
        Ok(match ty {
            Ty::Str { sensitive } | Ty::Blob { sensitive } => *sensitive,
            Ty::List(inner) | Ty::Map(inner) => self.contains_sensitive(inner, seen)?,
            Ty::Struct(name) => {
                let shape_name = self.shape_name_of(name)?;
                if !seen.insert(shape_name.clone()) {
                    return Ok(false);
                }
                let shape = self.shape(&shape_name)?;
                let mut any = false;
                for m in shape.members.values() {
                    any |= self.contains_sensitive(&self.ty(&m.shape)?, seen)?;
                }
                any
            }
            _ => false,
        })
    }

    /// Whether the public type has a `Default` (enums do not).
    fn has_default(&self, ty: &Ty, seen: &mut BTreeSet<String>) -> anyhow::Result<bool> {
        Ok(match ty {
            Ty::Enum(_) => false,
            Ty::Struct(name) => self.struct_has_default(&self.shape_name_of(name)?, seen)?,
            _ => true,
        })
    }

    fn struct_has_default(
        &self,
        shape_name: &str,
        seen: &mut BTreeSet<String>,
    ) -> anyhow::Result<bool> {
        if !seen.insert(shape_name.to_owned()) {
            return Ok(true);
        }
        let shape = self.shape(shape_name)?;
        for (member, r) in &shape.members {
            if shape.required.contains(member) && !self.has_default(&self.ty(&r.shape)?, seen)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn shape_name_of(&self, rust_name: &str) -> anyhow::Result<String> {
        self.model
            .shapes
            .keys()
            .find(|k| pascal(k) == rust_name)
            .cloned()
            .with_context(|| format!("no shape for {rust_name}"))
    }

    pub fn generate(mut self) -> anyhow::Result<String> {
        let mut out = String::new();
        let md = &self.model.metadata;
        writeln!(
            out,
            "//! Generated by keyhold-codegen from models/{}.json — do not edit",
            self.stem
        )?;
        writeln!(out, "//!")?;
        writeln!(
            out,
            "//! {} ({}, {}).",
            md.service_id, md.api_version, md.protocol
        )?;
        if let Some(source) = &md.source {
            writeln!(out, "//! Model source: {source}.")?;
        }
        out.push_str(
            "\n#![allow(clippy::all, clippy::pedantic, unused_imports, unused_variables, unused_mut, dead_code)]\n\n\
             use std::collections::BTreeMap;\n\
             use std::sync::LazyLock;\n\n\
             use serde::Serialize;\n\n\
             use crate::runtime::audit::AuditSink;\n\
             use crate::runtime::error::{ApiError, ErrorCode};\n\
             use crate::runtime::types::{Blob, SensitiveBlob, SensitiveString, Timestamp};\n\
             use crate::runtime::validate::{Path, Validator};\n\n",
        );
        self.gen_metadata(&mut out)?;
        self.gen_enums(&mut out)?;
        self.gen_structs(&mut out)?;
        let wire = self.gen_wire()?;
        self.gen_patterns(&mut out)?;
        out.push_str(&wire);
        self.gen_errors(&mut out)?;
        self.gen_operations(&mut out)?;
        self.gen_trait(&mut out)?;
        self.gen_dispatch(&mut out)?;
        Ok(out)
    }

    fn gen_metadata(&self, out: &mut String) -> anyhow::Result<()> {
        let md = &self.model.metadata;
        let signing = md.signing_name.as_deref().unwrap_or(&md.endpoint_prefix);
        writeln!(
            out,
            "/// The service's `serviceId`.\npub const SERVICE_ID: &str = {:?};",
            md.service_id
        )?;
        writeln!(
            out,
            "/// The SigV4 signing name (the service in the credential scope).\npub const SIGNING_NAME: &str = {signing:?};"
        )?;
        writeln!(
            out,
            "/// CloudTrail's `eventSource` for this service.\npub const EVENT_SOURCE: &str = \"{}.amazonaws.com\";",
            md.endpoint_prefix
        )?;
        writeln!(out, "pub const API_VERSION: &str = {:?};", md.api_version)?;
        writeln!(
            out,
            "/// The `X-Amz-Target` prefix (JSON 1.1 services).\npub const TARGET_PREFIX: Option<&str> = {:?};",
            md.target_prefix
        )?;
        writeln!(
            out,
            "/// The XML namespace of responses (awsQuery services).\npub const XML_NAMESPACE: Option<&str> = {:?};",
            md.xml_namespace
        )?;
        writeln!(
            out,
            "/// The member name of error messages in JSON bodies.\npub const MESSAGE_KEY: &str = {:?};\n",
            self.message_key()
        )?;
        Ok(())
    }

    /// The spelling of the message member most of the service's exceptions use.
    fn message_key(&self) -> &'static str {
        let capital = self
            .model
            .shapes
            .values()
            .filter(|s| s.exception && s.members.contains_key("Message"))
            .count();
        let lower = self
            .model
            .shapes
            .values()
            .filter(|s| s.exception && s.members.contains_key("message"))
            .count();
        if capital > lower {
            "Message"
        } else {
            "message"
        }
    }

    fn gen_enums(&self, out: &mut String) -> anyhow::Result<()> {
        for (name, shape) in &self.model.shapes {
            let Some(values) = &shape.enum_values else {
                continue;
            };
            if !self.input_shapes.contains(name) && !self.output_shapes.contains(name) {
                continue;
            }
            let rust = pascal(name);
            let variants: Vec<String> = values.iter().map(|v| variant(v)).collect();
            let unique: BTreeSet<&String> = variants.iter().collect();
            if unique.len() != variants.len() {
                bail!(
                    "{}: enum {name} has colliding variant names {variants:?}",
                    self.stem
                );
            }
            writeln!(out, "/// The `{name}` enum of the model.")?;
            writeln!(
                out,
                "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]"
            )?;
            writeln!(out, "pub enum {rust} {{")?;
            for (v, value) in variants.iter().zip(values) {
                writeln!(out, "    /// `{value}`\n    {v},")?;
            }
            writeln!(out, "}}\n")?;
            writeln!(out, "impl {rust} {{")?;
            writeln!(out, "    /// Every value, in the model's order.")?;
            writeln!(
                out,
                "    pub const VALUES: &'static [&'static str] = &{values:?};"
            )?;
            writeln!(
                out,
                "    pub const ALL: &'static [Self] = &[{}];",
                variants
                    .iter()
                    .map(|v| format!("Self::{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            writeln!(
                out,
                "    pub fn as_str(self) -> &'static str {{ match self {{"
            )?;
            for (v, value) in variants.iter().zip(values) {
                writeln!(out, "        Self::{v} => {value:?},")?;
            }
            writeln!(out, "    }} }}")?;
            writeln!(
                out,
                "    pub fn parse(value: &str) -> Option<Self> {{ match value {{"
            )?;
            for (v, value) in variants.iter().zip(values) {
                writeln!(out, "        {value:?} => Some(Self::{v}),")?;
            }
            writeln!(out, "        _ => None,\n    }} }}")?;
            writeln!(out, "}}\n")?;
            writeln!(
                out,
                "impl std::fmt::Display for {rust} {{ fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{ f.write_str(self.as_str()) }} }}\n"
            )?;
            writeln!(
                out,
                "impl Serialize for {rust} {{ fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {{ s.serialize_str(self.as_str()) }} }}\n"
            )?;
            writeln!(
                out,
                "impl crate::runtime::audit::AuditView for {rust} {{ fn audit_view(&self) -> serde_json::Value {{ serde_json::Value::String(self.as_str().to_owned()) }} }}\n"
            )?;
        }
        Ok(())
    }

    fn structures(&self) -> impl Iterator<Item = (&'m String, &'m Shape)> + '_ {
        self.model.shapes.iter().filter(move |(name, shape)| {
            shape.kind == "structure"
                && !shape.exception
                && (self.input_shapes.contains(*name) || self.output_shapes.contains(*name))
        })
    }

    fn gen_structs(&self, out: &mut String) -> anyhow::Result<()> {
        for (name, shape) in self.structures() {
            let rust = pascal(name);
            let sensitive =
                self.contains_sensitive(&Ty::Struct(rust.clone()), &mut BTreeSet::new())?;
            let default = self.struct_has_default(name, &mut BTreeSet::new())?;
            let mut derives = vec!["Debug"];
            if !sensitive {
                derives.extend(["Clone", "PartialEq"]);
            }
            if default {
                derives.push("Default");
            }
            if self.json {
                derives.push("Serialize");
            }
            writeln!(out, "/// The `{name}` structure of the model.")?;
            writeln!(out, "#[derive({})]", derives.join(", "))?;
            writeln!(out, "pub struct {rust} {{")?;
            for (member, r) in &shape.members {
                let ty = self.ty(&r.shape)?;
                let required = shape.required.contains(member);
                let field = snake(member);
                let pty = Self::public_ty(&ty);
                if self.json {
                    if required {
                        writeln!(out, "    #[serde(rename = {member:?})]")?;
                    } else {
                        writeln!(
                            out,
                            "    #[serde(rename = {member:?}, skip_serializing_if = \"Option::is_none\")]"
                        )?;
                    }
                }
                if required {
                    writeln!(out, "    pub {field}: {pty},")?;
                } else {
                    writeln!(out, "    pub {field}: Option<{pty}>,")?;
                }
            }
            writeln!(out, "}}\n")?;
            self.gen_audit_view(out, &rust, shape)?;
            if !self.json && self.output_shapes.contains(name) {
                self.gen_to_xml(out, &rust, shape)?;
            }
        }
        Ok(())
    }

    fn gen_to_xml(&self, out: &mut String, rust: &str, shape: &Shape) -> anyhow::Result<()> {
        writeln!(out, "impl crate::runtime::xml::ToXml for {rust} {{")?;
        writeln!(
            out,
            "    fn write_members(&self, w: &mut crate::runtime::xml::XmlWriter) {{"
        )?;
        for (member, r) in &shape.members {
            let ty = self.ty(&r.shape)?;
            let field = snake(member);
            let required = shape.required.contains(member);
            let body = Self::xml_write(&ty, member, "v", 0);
            if required {
                writeln!(out, "        {{ let v = &self.{field}; {body} }}")?;
            } else {
                writeln!(out, "        if let Some(v) = &self.{field} {{ {body} }}")?;
            }
        }
        writeln!(out, "    }}\n}}\n")?;
        Ok(())
    }

    /// Statements writing the value `var` (a reference) as element `element`.
    fn xml_write(ty: &Ty, element: &str, var: &str, depth: usize) -> String {
        let text = |expr: String| format!("w.element({element:?}, &{expr});");
        match ty {
            Ty::Str { sensitive: false } => format!("w.element({element:?}, {var});"),
            Ty::Str { sensitive: true } => {
                format!("w.element({element:?}, {var}.expose_secret());")
            }
            Ty::Enum(_) => format!("w.element({element:?}, {var}.as_str());"),
            Ty::Int | Ty::Long | Ty::Bool => text(format!("{var}.to_string()")),
            Ty::Timestamp => text(format!("{var}.to_iso8601()")),
            Ty::Blob { .. } => text(format!("{var}.to_base64()")),
            Ty::Struct(_) => format!(
                "w.open({element:?}); crate::runtime::xml::ToXml::write_members({var}, w); w.close({element:?});"
            ),
            Ty::List(inner) => {
                let item = format!("i{depth}");
                format!(
                    "w.open({element:?}); for {item} in {var}.iter() {{ {} }} w.close({element:?});",
                    Self::xml_write(inner, "member", &item, depth + 1)
                )
            }
            Ty::Map(inner) => {
                let (k, v) = (format!("k{depth}"), format!("v{depth}"));
                format!(
                    "w.open({element:?}); for ({k}, {v}) in {var}.iter() {{ w.open(\"entry\"); w.element(\"key\", {k}); {} w.close(\"entry\"); }} w.close({element:?});",
                    Self::xml_write(inner, "value", &v, depth + 1)
                )
            }
        }
    }

    fn gen_wire(&mut self) -> anyhow::Result<String> {
        let mut out = String::new();
        out.push_str(
            "/// Request structures as they arrive, before validation: every member optional.\n\
             pub mod wire {\n\
             use std::collections::BTreeMap;\n\
             use serde::Deserialize;\n\
             use crate::runtime::types::{Blob, SensitiveBlob, SensitiveString, Timestamp};\n\
             use crate::runtime::validate::{Part, Path, Render, Rules, Shown, Validator};\n\
             use crate::runtime::query::QueryParams;\n\
             use crate::runtime::error::ApiError;\n\n",
        );
        let inputs: Vec<(&String, &Shape)> = self
            .model
            .shapes
            .iter()
            .filter(|(n, s)| {
                s.kind == "structure" && !s.exception && self.input_shapes.contains(*n)
            })
            .collect();
        for (name, shape) in inputs {
            let rust = pascal(name);
            if self.json {
                // The derived decoder (renamed by `remote = "Self"`) reads the fields; the
                // `Deserialize` impl below lets it see only a JSON object, since serde's
                // derive would also take an array, which AWS refuses.
                writeln!(
                    out,
                    "#[derive(Debug, Default, Deserialize)]\n#[serde(remote = \"Self\")]\npub struct {rust} {{"
                )?;
            } else {
                writeln!(out, "#[derive(Debug, Default)]\npub struct {rust} {{")?;
            }
            for (member, r) in &shape.members {
                let ty = self.ty(&r.shape)?;
                if self.json {
                    writeln!(out, "    #[serde(rename = {member:?}, default)]")?;
                }
                writeln!(
                    out,
                    "    pub {}: Option<{}>,",
                    snake(member),
                    Self::wire_ty(&ty)
                )?;
            }
            writeln!(out, "}}\n")?;
            self.gen_audit_view(&mut out, &rust, shape)?;
            if self.json {
                writeln!(
                    out,
                    "impl crate::runtime::json::Fields for {rust} {{ fn from_fields<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {{ {rust}::deserialize(d) }} }}\n\
                     impl<'de> Deserialize<'de> for {rust} {{ fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {{ crate::runtime::json::structure(d) }} }}\n"
                )?;
            }

            // validate
            writeln!(out, "impl {rust} {{")?;
            writeln!(
                out,
                "    /// Checks the model's constraints, reporting every violation to `v`."
            )?;
            writeln!(
                out,
                "    pub fn validate(self, v: &mut Validator, path: &Path<'_>) -> Option<super::{rust}> {{"
            )?;
            let mut fields = Vec::new();
            for (member, r) in &shape.members {
                let ty = self.ty(&r.shape)?;
                let field = snake(member);
                let local = format!("m_{}", field.trim_start_matches("r#"));
                let required = shape.required.contains(member);
                let conv = self.convert(&ty, &r.shape, "x", "p", 0)?;
                let stmt = match (required, conv) {
                    (true, None) => {
                        format!("v.required(self.{field}, &Path::Member(path, {member:?}))")
                    }
                    (false, None) => format!("Some(self.{field})"),
                    (true, Some(Conv::Check(c))) => format!(
                        "{{ let p = Path::Member(path, {member:?}); if let Some(x) = &self.{field} {{ {c} }} v.required(self.{field}, &p) }}"
                    ),
                    (false, Some(Conv::Check(c))) => format!(
                        "{{ let p = Path::Member(path, {member:?}); if let Some(x) = &self.{field} {{ {c} }} Some(self.{field}) }}"
                    ),
                    (true, Some(Conv::Build(c))) => format!(
                        "{{ let p = Path::Member(path, {member:?}); match self.{field} {{ Some(x) => {c}, None => v.required(None, &p) }} }}"
                    ),
                    (false, Some(Conv::Build(c))) => format!(
                        "{{ let p = Path::Member(path, {member:?}); match self.{field} {{ Some(x) => ({c}).map(Some), None => Some(None) }} }}"
                    ),
                };
                writeln!(out, "        let {local} = {stmt};")?;
                fields.push(format!("{field}: {local}?"));
            }
            writeln!(
                out,
                "        Some(super::{rust} {{ {} }})",
                fields.join(", ")
            )?;
            writeln!(out, "    }}\n}}\n")?;

            writeln!(
                out,
                "impl Render for {rust} {{ fn render(&self) -> String {{ {:?}.to_owned() }} }}\n",
                format!("{name}(...)")
            )?;

            if !self.json {
                self.gen_from_query(&mut out, &rust, shape)?;
            }
        }
        out.push_str("}\n\n");
        Ok(out)
    }

    /// How the wire value `x` at path `p` becomes its public value, or `None` when it already
    /// is (no constraint). A collection whose elements are only checked is checked in place.
    fn convert(
        &mut self,
        ty: &Ty,
        shape_name: &str,
        x: &str,
        p: &str,
        depth: usize,
    ) -> anyhow::Result<Option<Conv>> {
        let shape = self.shape(shape_name)?;
        let opt = |v: Option<i64>| match v {
            Some(n) => format!("Some({n})"),
            None => "None".into(),
        };
        Ok(match ty {
            Ty::Str { sensitive } => {
                if shape.min.is_none() && shape.max.is_none() && shape.pattern.is_none() {
                    return Ok(None);
                }
                let pattern = match &shape.pattern {
                    Some(pat) => {
                        let idx = self.pattern_index(pat)?;
                        format!("Some((&*super::PATTERN_{idx}, {pat:?}))")
                    }
                    None => "None".into(),
                };
                let value = if *sensitive {
                    format!("{x}.expose_secret()")
                } else {
                    x.to_owned()
                };
                Some(Conv::Check(format!(
                    "v.string({value}, &{p}, {}, {}, {pattern}, {sensitive});",
                    opt_u64(shape.min),
                    opt_u64(shape.max),
                )))
            }
            Ty::Enum(name) => Some(Conv::Build(format!(
                "{{ let e = super::{name}::parse(&{x}); if e.is_none() {{ v.enumeration(&{x}, &{p}, super::{name}::VALUES); }} e }}"
            ))),
            Ty::Int | Ty::Long => {
                if shape.min.is_none() && shape.max.is_none() {
                    return Ok(None);
                }
                Some(Conv::Check(format!(
                    "v.number(i64::from(*{x}), &{p}, {}, {});",
                    opt(shape.min),
                    opt(shape.max)
                )))
            }
            Ty::Bool | Ty::Timestamp => None,
            Ty::Blob { sensitive } => {
                if shape.min.is_none() && shape.max.is_none() {
                    return Ok(None);
                }
                Some(Conv::Check(format!(
                    "v.blob({x}.len(), &{p}, {}, {}, {sensitive});",
                    opt_u64(shape.min),
                    opt_u64(shape.max),
                )))
            }
            Ty::Struct(_) => Some(Conv::Build(format!("{x}.validate(v, &{p})"))),
            Ty::List(inner) => {
                let member = shape.member.as_ref().context("list member")?.shape.clone();
                let len_check = self.collection_check(shape, x, p);
                if let Some(el) = self.element_rules(inner, &member)? {
                    // Simple members are reported once, on the whole list, as AWS does.
                    let check = el.check(x, "iter", p, "Part::Member");
                    return Ok(Some(match inner.as_ref() {
                        Ty::Enum(name) => Conv::Build(format!(
                            "{{ {len_check} {check} \
                             {x}.iter().map(|e| super::{name}::parse(e)).collect::<Option<Vec<_>>>() }}"
                        )),
                        _ => Conv::Check(format!("{len_check} {check}")),
                    }));
                }
                if matches!(
                    inner.as_ref(),
                    Ty::Str { .. }
                        | Ty::Int
                        | Ty::Long
                        | Ty::Blob { .. }
                        | Ty::Bool
                        | Ty::Timestamp
                ) {
                    return Ok((!len_check.is_empty()).then_some(Conv::Check(len_check)));
                }
                let (xi, pi) = (format!("x{}", depth + 1), format!("p{}", depth + 1));
                let inner_conv = self.convert(inner, &member, &xi, &pi, depth + 1)?;
                match inner_conv {
                    None if len_check.is_empty() => return Ok(None),
                    None => Some(Conv::Check(len_check)),
                    Some(Conv::Check(c)) => Some(Conv::Check(format!(
                        "{len_check} for (i, {xi}) in {x}.iter().enumerate() {{ let {pi} = Path::Index(&{p}, i); {c} }}"
                    ))),
                    Some(Conv::Build(c)) => Some(Conv::Build(format!(
                        "{{ {len_check} let mut ok = true; let mut out = Vec::with_capacity({x}.len()); \
                         for (i, {xi}) in {x}.into_iter().enumerate() {{ let {pi} = Path::Index(&{p}, i); \
                         match {c} {{ Some(e) => out.push(e), None => ok = false }} }} ok.then_some(out) }}"
                    ))),
                }
            }
            Ty::Map(inner) => {
                let key = shape.key.as_ref().context("map key")?.shape.clone();
                let value = shape.value.as_ref().context("map value")?.shape.clone();
                let len_check = self.collection_check(shape, x, p);
                // Keys and simple values are reported once, on the whole map, as AWS does
                // (`Map keys must satisfy constraint: [...]`); values before keys.
                let key_check = match self.element_rules(&Ty::Str { sensitive: false }, &key)? {
                    Some(el) => el.check(x, "keys", p, "Part::MapKeys"),
                    None => String::new(),
                };
                if let Some(el) = self.element_rules(inner, &value)? {
                    let check = el.check(x, "values", p, "Part::MapValue");
                    return Ok(Some(match inner.as_ref() {
                        Ty::Enum(name) => Conv::Build(format!(
                            "{{ {len_check} {check} {key_check} \
                             {x}.into_iter().map(|(k, e)| super::{name}::parse(&e).map(|e| (k, e))).collect::<Option<BTreeMap<_, _>>>() }}"
                        )),
                        _ => Conv::Check(format!("{len_check} {check} {key_check}")),
                    }));
                }
                let (xi, pi, ki) = (
                    format!("x{}", depth + 1),
                    format!("p{}", depth + 1),
                    format!("k{}", depth + 1),
                );
                let inner_conv = self.convert(inner, &value, &xi, &pi, depth + 1)?;
                match inner_conv {
                    None if len_check.is_empty() && key_check.is_empty() => return Ok(None),
                    None => Some(Conv::Check(format!("{len_check} {key_check}"))),
                    Some(Conv::Check(value_check)) => Some(Conv::Check(format!(
                        "{len_check} for ({ki}, {xi}) in {x} {{ let {pi} = Path::Key(&{p}, {ki}); {value_check} }} {key_check}"
                    ))),
                    Some(Conv::Build(value_expr)) => Some(Conv::Build(format!(
                        "{{ {len_check} {key_check} let mut ok = true; let mut out = BTreeMap::new(); \
                         for ({ki}, {xi}) in {x} {{ let {pi} = Path::Key(&{p}, &{ki}); \
                         match {value_expr} {{ Some(e) => {{ out.insert({ki}, e); }} None => ok = false }} }} ok.then_some(out) }}"
                    ))),
                }
            }
        })
    }

    /// The constraints of a list member / map key / map value of a simple type (string, enum,
    /// number, blob), or `None` when it has none or is not simple.
    fn element_rules(&mut self, ty: &Ty, shape_name: &str) -> anyhow::Result<Option<Element>> {
        let shape = self.shape(shape_name)?;
        let opt = |v: Option<i64>| match v {
            Some(n) => format!("Some({n})"),
            None => "None".into(),
        };
        let length = format!("({}, {})", opt_u64(shape.min), opt_u64(shape.max));
        let range = format!("({}, {})", opt(shape.min), opt(shape.max));
        let none2 = "(None, None)".to_owned();
        let (length, range, sensitive, ok) = match ty {
            Ty::Str { sensitive } => {
                if shape.min.is_none() && shape.max.is_none() && shape.pattern.is_none() {
                    return Ok(None);
                }
                let value = if *sensitive { "e.expose_secret()" } else { "e" };
                (length, none2, *sensitive, format!("string_ok({value})"))
            }
            Ty::Enum(_) => (length, none2, false, "string_ok(e)".to_owned()),
            Ty::Int | Ty::Long => {
                if shape.min.is_none() && shape.max.is_none() {
                    return Ok(None);
                }
                (none2, range, false, "number_ok(i64::from(*e))".to_owned())
            }
            Ty::Blob { sensitive } => {
                if shape.min.is_none() && shape.max.is_none() {
                    return Ok(None);
                }
                (length, none2, *sensitive, "blob_ok(e.len())".to_owned())
            }
            _ => return Ok(None),
        };
        let pattern = match (&shape.pattern, ty) {
            (Some(pat), Ty::Str { .. } | Ty::Enum(_)) => {
                let idx = self.pattern_index(pat)?;
                format!("Some((&*super::PATTERN_{idx}, {pat:?}))")
            }
            _ => "None".into(),
        };
        let allowed = match ty {
            Ty::Enum(name) => format!("Some(super::{name}::VALUES)"),
            _ => "None".into(),
        };
        Ok(Some(Element {
            rules: format!(
                "Rules {{ length: {length}, range: {range}, pattern: {pattern}, allowed: {allowed} }}"
            ),
            ok,
            sensitive,
        }))
    }

    fn collection_check(&self, shape: &Shape, x: &str, p: &str) -> String {
        if shape.min.is_none() && shape.max.is_none() {
            return String::new();
        }
        format!(
            "v.collection({x}.len(), &{p}, {}, {}, || {x}.render());",
            opt_u64(shape.min),
            opt_u64(shape.max)
        )
    }

    fn pattern_index(&mut self, pattern: &str) -> anyhow::Result<usize> {
        let translated = translate_java_regex(pattern);
        regex::Regex::new(&translated).with_context(|| {
            format!(
                "{}: pattern {pattern:?} (as {translated:?}) does not compile",
                self.stem
            )
        })?;
        let next = self.patterns.len();
        Ok(*self.patterns.entry(pattern.to_owned()).or_insert(next))
    }

    fn gen_patterns(&self, out: &mut String) -> anyhow::Result<()> {
        for (pattern, idx) in &self.patterns {
            let translated = translate_java_regex(pattern);
            writeln!(
                out,
                "/// The model's pattern `{}`, anchored as AWS matches it (whole value).",
                pattern.replace('`', "'")
            )?;
            writeln!(
                out,
                "static PATTERN_{idx}: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new({translated:?}).expect(\"keyhold-codegen compiled this pattern\"));\n"
            )?;
        }
        Ok(())
    }

    fn gen_from_query(&self, out: &mut String, rust: &str, shape: &Shape) -> anyhow::Result<()> {
        writeln!(out, "impl {rust} {{")?;
        writeln!(
            out,
            "    /// Decodes the members under `prefix` (`\"\"` at the top level, else `\"Name.\"`)."
        )?;
        writeln!(
            out,
            "    pub fn from_query(q: &QueryParams, prefix: &str) -> Result<Self, ApiError> {{"
        )?;
        writeln!(out, "        Ok(Self {{")?;
        for (member, r) in &shape.members {
            let ty = self.ty(&r.shape)?;
            let expr = Self::query_read(&ty, &format!("format!(\"{{prefix}}{member}\")"), 0);
            writeln!(out, "            {}: {expr},", snake(member))?;
        }
        writeln!(out, "        }})\n    }}\n}}\n")?;
        Ok(())
    }

    /// An expression of type `Option<wire type>` (with `?` for errors) reading `key`.
    fn query_read(ty: &Ty, key: &str, depth: usize) -> String {
        let k = format!("k{depth}");
        let bind = |body: String| format!("{{ let {k}: String = {key}; {body} }}");
        match ty {
            Ty::Str { sensitive: false } | Ty::Enum(_) => bind(format!("q.string(&{k})")),
            Ty::Str { sensitive: true } => bind(format!("q.sensitive_string(&{k})")),
            Ty::Int | Ty::Long => bind(format!("q.number(&{k})?")),
            Ty::Bool => bind(format!("q.boolean(&{k})?")),
            Ty::Timestamp => bind(format!("q.timestamp(&{k})?")),
            Ty::Blob { sensitive: false } => bind(format!("q.blob(&{k})?")),
            Ty::Blob { sensitive: true } => bind(format!("q.sensitive_blob(&{k})?")),
            Ty::Struct(name) => bind(format!(
                "if q.has_prefix(&{k}) {{ Some({name}::from_query(q, &format!(\"{{{k}}}.\"))?) }} else {{ None }}"
            )),
            Ty::List(inner) => {
                let item = Self::query_read(
                    inner,
                    &format!("format!(\"{{{k}}}.member.{{i}}\")"),
                    depth + 1,
                );
                bind(format!(
                    "match q.list_len(&{k}) {{ Some(n) => {{ let mut items = Vec::with_capacity(n); \
                     for i in 1..=n {{ items.push(({item}).unwrap_or_default()); }} Some(items) }} None => None }}"
                ))
            }
            Ty::Map(inner) => {
                let value = Self::query_read(
                    inner,
                    &format!("format!(\"{{{k}}}.entry.{{i}}.value\")"),
                    depth + 1,
                );
                bind(format!(
                    "match q.map_len(&{k}) {{ Some(n) => {{ let mut map = BTreeMap::new(); \
                     for i in 1..=n {{ let key = q.string(&format!(\"{{{k}}}.entry.{{i}}.key\")).unwrap_or_default(); \
                     map.insert(key, ({value}).unwrap_or_default()); }} Some(map) }} None => None }}"
                ))
            }
        }
    }

    fn gen_errors(&self, out: &mut String) -> anyhow::Result<()> {
        let prefix = self.prefix;
        let exceptions: Vec<(&String, &Shape)> = self
            .model
            .shapes
            .iter()
            .filter(|(_, s)| s.exception)
            .collect();
        writeln!(out, "/// The error codes of the model's exception shapes.")?;
        writeln!(
            out,
            "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]\npub enum {prefix}ErrorCode {{"
        )?;
        for (name, _) in &exceptions {
            writeln!(out, "    {},", pascal(name))?;
        }
        writeln!(out, "}}\n")?;
        writeln!(
            out,
            "impl {prefix}ErrorCode {{\n    pub const ALL: &'static [Self] = &[{}];\n}}\n",
            exceptions
                .iter()
                .map(|(n, _)| format!("Self::{}", pascal(n)))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(out, "impl ErrorCode for {prefix}ErrorCode {{")?;
        let arms = |f: &dyn Fn(&str, &Shape) -> String| -> String {
            exceptions
                .iter()
                .map(|(n, s)| format!("            Self::{} => {},\n", pascal(n), f(n, s)))
                .collect()
        };
        let code = arms(&|n, s| {
            format!(
                "{:?}",
                s.error
                    .as_ref()
                    .and_then(|e| e.code.clone())
                    .unwrap_or_else(|| n.to_owned())
            )
        });
        writeln!(
            out,
            "    fn code(self) -> &'static str {{\n        match self {{\n{code}        }}\n    }}"
        )?;
        let status = arms(&|_, s| {
            s.error
                .as_ref()
                .and_then(|e| e.http_status_code)
                .unwrap_or(if s.fault { 500 } else { 400 })
                .to_string()
        });
        writeln!(
            out,
            "    fn http_status(self) -> u16 {{\n        match self {{\n{status}        }}\n    }}"
        )?;
        let sender = arms(&|_, s| {
            s.error
                .as_ref()
                .and_then(|e| e.sender_fault)
                .unwrap_or(!s.fault)
                .to_string()
        });
        writeln!(
            out,
            "    fn sender_fault(self) -> bool {{\n        match self {{\n{sender}        }}\n    }}"
        )?;
        let key = arms(&|_, s| {
            if s.members.contains_key("Message") {
                "Some(\"Message\")".into()
            } else if s.members.contains_key("message") {
                "Some(\"message\")".into()
            } else {
                "None".into()
            }
        });
        writeln!(
            out,
            "    fn message_key(self) -> Option<&'static str> {{\n        match self {{\n{key}        }}\n    }}"
        )?;
        writeln!(out, "}}\n")?;
        Ok(())
    }

    fn gen_operations(&self, out: &mut String) -> anyhow::Result<()> {
        let prefix = self.prefix;
        let ops: Vec<&String> = self.model.operations.keys().collect();
        writeln!(out, "/// The operations of the model.")?;
        writeln!(
            out,
            "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]\npub enum {prefix}Operation {{"
        )?;
        for op in &ops {
            writeln!(out, "    {op},")?;
        }
        writeln!(out, "}}\n")?;
        writeln!(out, "impl {prefix}Operation {{")?;
        writeln!(
            out,
            "    pub const ALL: &'static [Self] = &[{}];",
            ops.iter()
                .map(|o| format!("Self::{o}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(
            out,
            "    pub fn name(self) -> &'static str {{ match self {{"
        )?;
        for op in &ops {
            writeln!(out, "        Self::{op} => {op:?},")?;
        }
        writeln!(out, "    }} }}")?;
        writeln!(
            out,
            "    pub fn from_name(name: &str) -> Option<Self> {{ match name {{"
        )?;
        for op in &ops {
            writeln!(out, "        {op:?} => Some(Self::{op}),")?;
        }
        writeln!(out, "        _ => None,\n    }} }}")?;
        writeln!(out, "}}\n")?;
        writeln!(
            out,
            "impl std::fmt::Display for {prefix}Operation {{ fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{ f.write_str(self.name()) }} }}\n"
        )?;
        Ok(())
    }

    fn op_types(&self, op: &crate::model::Operation) -> (String, String) {
        let input = op
            .input
            .as_ref()
            .map(|i| pascal(&i.shape))
            .unwrap_or_else(|| "()".into());
        let output = op
            .output
            .as_ref()
            .map(|o| pascal(&o.shape))
            .unwrap_or_else(|| "()".into());
        (input, output)
    }

    /// `impl AuditView` for a structure (public or wire): its recordable members under their
    /// lowerCamelCase names. Sensitive and binary members are not read at all.
    fn gen_audit_view(&self, out: &mut String, rust: &str, shape: &Shape) -> anyhow::Result<()> {
        let mut members = String::new();
        for (member, r) in &shape.members {
            if self.recordable(&r.shape)? {
                write!(
                    members,
                    ".member({:?}, &self.{})",
                    lower_camel(member),
                    snake(member)
                )?;
            }
        }
        writeln!(
            out,
            "impl crate::runtime::audit::AuditView for {rust} {{ fn audit_view(&self) -> serde_json::Value {{ crate::runtime::audit::Record::new(){members}.finish() }} }}\n"
        )?;
        Ok(())
    }

    /// Whether the audit trail records a member of this shape: never a sensitive one, and
    /// (as CloudTrail) never a binary one such as a ciphertext blob.
    fn recordable(&self, shape_name: &str) -> anyhow::Result<bool> {
        let shape = self.shape(shape_name)?;
        if shape.sensitive || shape.kind == "blob" {
            return Ok(false);
        }
        Ok(match shape.kind.as_str() {
            "list" => self.recordable(&shape.member.as_ref().context("list member")?.shape)?,
            "map" => self.recordable(&shape.value.as_ref().context("map value")?.shape)?,
            _ => true,
        })
    }

    fn gen_trait(&self, out: &mut String) -> anyhow::Result<()> {
        let prefix = self.prefix;
        let service_id = &self.model.metadata.service_id;
        writeln!(
            out,
            "/// The {service_id} API: one method per operation. Every method defaults to AWS-shaped"
        )?;
        writeln!(
            out,
            "/// \"unsupported operation\"; an implementation overrides the ones it serves."
        )?;
        writeln!(
            out,
            "#[async_trait::async_trait]\npub trait {prefix}Api: Send + Sync {{"
        )?;
        writeln!(
            out,
            "    /// What the server knows about the request: caller, region, request id."
        )?;
        writeln!(
            out,
            "    type Context: Send + Sync + crate::runtime::audit::AuditSink;\n"
        )?;
        for (name, op) in &self.model.operations {
            let (input, output) = self.op_types(op);
            writeln!(
                out,
                "    async fn {}(&self, ctx: &Self::Context, input: {input}) -> Result<{output}, ApiError> {{\n        let _ = (ctx, input);\n        Err(ApiError::unsupported_operation(SERVICE_ID, {name:?}))\n    }}\n",
                snake(name)
            )?;
        }
        writeln!(out, "}}\n")?;
        Ok(())
    }

    fn gen_dispatch(&self, out: &mut String) -> anyhow::Result<()> {
        let prefix = self.prefix;
        writeln!(
            out,
            "fn validated<T, W>(wire: W, validate: impl FnOnce(W, &mut Validator, &Path<'_>) -> Option<T>) -> Result<T, ApiError> {{"
        )?;
        writeln!(
            out,
            "    let mut v = Validator::new();\n    let value = validate(wire, &mut v, &Path::Root);\n    v.finish()?;\n    value.ok_or_else(ApiError::internal)\n}}\n"
        )?;
        if self.json {
            writeln!(
                out,
                "/// Decodes a JSON 1.1 request body, validates it, calls `api` and encodes its answer."
            )?;
            writeln!(
                out,
                "pub async fn dispatch<S: {prefix}Api + ?Sized>(api: &S, ctx: &S::Context, op: {prefix}Operation, body: &[u8]) -> Result<Vec<u8>, ApiError> {{"
            )?;
            writeln!(out, "    match op {{")?;
            for (name, op) in &self.model.operations {
                let (input, _) = self.op_types(op);
                let decode = if op.input.is_some() {
                    format!(
                        "let wire = crate::runtime::json::decode::<wire::{input}>(body)?; ctx.audit_request(&wire); let input = validated(wire, wire::{input}::validate)?;"
                    )
                } else {
                    "let input = ();".into()
                };
                let encode = if op.output.is_some() {
                    format!(
                        "let output = api.{}(ctx, input).await?; ctx.audit_response(&output); crate::runtime::json::encode(&output)",
                        snake(name)
                    )
                } else {
                    format!(
                        "api.{}(ctx, input).await?; Ok(crate::runtime::json::empty())",
                        snake(name)
                    )
                };
                writeln!(
                    out,
                    "        {prefix}Operation::{name} => {{ {decode} {encode} }}"
                )?;
            }
            writeln!(out, "    }}\n}}\n")?;
        } else {
            let ns = self
                .model
                .metadata
                .xml_namespace
                .clone()
                .unwrap_or_default();
            writeln!(
                out,
                "/// Decodes an awsQuery request, validates it, calls `api` and writes its XML answer."
            )?;
            writeln!(
                out,
                "pub async fn dispatch<S: {prefix}Api + ?Sized>(api: &S, ctx: &S::Context, op: {prefix}Operation, q: &crate::runtime::query::QueryParams, request_id: &str) -> Result<String, ApiError> {{"
            )?;
            writeln!(
                out,
                "    let mut w = crate::runtime::xml::XmlWriter::new();"
            )?;
            writeln!(out, "    match op {{")?;
            for (name, op) in &self.model.operations {
                let (input, _) = self.op_types(op);
                let decode = if op.input.is_some() {
                    format!(
                        "let wire = wire::{input}::from_query(q, \"\")?; ctx.audit_request(&wire); let input = validated(wire, wire::{input}::validate)?;"
                    )
                } else {
                    "let input = ();".into()
                };
                let call = format!("api.{}(ctx, input).await?", snake(name));
                let body = match op.output.as_ref().and_then(|o| o.result_wrapper.clone()) {
                    Some(wrapper) => format!(
                        "let out = {call}; w.open_with_ns(\"{name}Response\", {ns:?}); w.open({wrapper:?}); crate::runtime::xml::ToXml::write_members(&out, &mut w); w.close({wrapper:?});"
                    ),
                    None => format!("{call}; w.open_with_ns(\"{name}Response\", {ns:?});"),
                };
                writeln!(
                    out,
                    "        {prefix}Operation::{name} => {{ {decode} {body} w.open(\"ResponseMetadata\"); w.element(\"RequestId\", request_id); w.close(\"ResponseMetadata\"); w.close(\"{name}Response\"); }}"
                )?;
            }
            writeln!(out, "    }}\n    Ok(w.finish())\n}}\n")?;
        }
        Ok(())
    }
}

fn opt_u64(v: Option<i64>) -> String {
    match v {
        Some(n) => format!("Some({n}u64)"),
        None => "None".into(),
    }
}

/// Java regular expressions (as the models write them) → the `regex` crate, anchored:
/// Java's `\w` and `\d` are ASCII-only, the `regex` crate's are Unicode.
pub fn translate_java_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = 0usize;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('w') => out.push_str(if in_class > 0 {
                    "0-9A-Za-z_"
                } else {
                    "[0-9A-Za-z_]"
                }),
                Some('d') => out.push_str(if in_class > 0 { "0-9" } else { "[0-9]" }),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' => {
                in_class += 1;
                out.push(c);
            }
            ']' => {
                in_class = in_class.saturating_sub(1);
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    format!("^(?:{out})$")
}
