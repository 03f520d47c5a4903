//! The wire error: an AWS error code, an HTTP status and a message.
//!
//! Services keep their own typed error enums and convert them into [`ApiError`] in exactly
//! one place each; this type only knows how AWS spells errors on the wire. Codes come from
//! the generated per-service enums (from the models' exception shapes) or from
//! [`CommonError`], the errors every AWS front end shares, whose spelling differs between
//! JSON 1.1 (`ValidationException`) and awsQuery (`ValidationError`).

use std::borrow::Cow;
use std::fmt;

/// An error code a service can answer with: implemented by the generated enums.
pub trait ErrorCode: Copy {
    /// The code as JSON 1.1 writes it in `__type`.
    fn code(self) -> &'static str;
    /// The code as awsQuery writes it in `<Code>` (the same as [`Self::code`] unless the
    /// model says otherwise).
    fn query_code(self) -> &'static str {
        self.code()
    }
    fn http_status(self) -> u16;
    /// `true` for errors the caller caused (awsQuery `<Type>Sender</Type>`).
    fn sender_fault(self) -> bool;
    /// The member name of the message (`message` for KMS, `Message` for Secrets Manager).
    fn message_key(self) -> Option<&'static str> {
        None
    }
}

/// The errors every AWS front end shares, independent of the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommonError {
    Validation,
    Serialization,
    UnknownOperation,
    /// An awsQuery request without an `Action` parameter.
    MissingAction,
    UnsupportedOperation,
    AccessDenied,
    Throttling,
    RequestEntityTooLarge,
    InternalFailure,
    ServiceUnavailable,
}

impl ErrorCode for CommonError {
    fn code(self) -> &'static str {
        match self {
            Self::Validation => "ValidationException",
            Self::Serialization => "SerializationException",
            Self::UnknownOperation => "UnknownOperationException",
            Self::MissingAction => "MissingAction",
            Self::UnsupportedOperation => "UnsupportedOperationException",
            Self::AccessDenied => "AccessDeniedException",
            Self::Throttling => "ThrottlingException",
            Self::RequestEntityTooLarge => "RequestEntityTooLargeException",
            Self::InternalFailure => "InternalFailure",
            Self::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    fn query_code(self) -> &'static str {
        match self {
            Self::Validation => "ValidationError",
            Self::Serialization => "MalformedInput",
            Self::UnknownOperation => "InvalidAction",
            Self::MissingAction => "MissingAction",
            Self::UnsupportedOperation => "UnsupportedOperation",
            Self::AccessDenied => "AccessDenied",
            Self::Throttling => "Throttling",
            Self::RequestEntityTooLarge => "RequestEntityTooLarge",
            Self::InternalFailure => "InternalFailure",
            Self::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    fn http_status(self) -> u16 {
        match self {
            Self::RequestEntityTooLarge => 413,
            Self::InternalFailure => 500,
            Self::ServiceUnavailable => 503,
            _ => 400,
        }
    }

    fn sender_fault(self) -> bool {
        !matches!(self, Self::InternalFailure | Self::ServiceUnavailable)
    }
}

/// An error as it goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiError {
    code: &'static str,
    query_code: &'static str,
    status: u16,
    sender_fault: bool,
    message_key: Option<&'static str>,
    message: Option<Cow<'static, str>>,
}

impl ApiError {
    pub fn new(code: impl ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: Some(message.into()),
            ..Self::bare(code)
        }
    }

    /// An error without a message member (AWS sends some that way).
    pub fn bare(code: impl ErrorCode) -> Self {
        Self {
            code: code.code(),
            query_code: code.query_code(),
            status: code.http_status(),
            sender_fault: code.sender_fault(),
            message_key: code.message_key(),
            message: None,
        }
    }

    /// An error whose code, statuses and fault are decided elsewhere (authentication).
    pub(crate) fn from_raw(
        code: &'static str,
        query_code: &'static str,
        status: u16,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            code,
            query_code,
            status,
            sender_fault: true,
            message_key: None,
            message: Some(message.into()),
        }
    }

    pub fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(CommonError::Validation, message)
    }

    pub fn serialization(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(CommonError::Serialization, message)
    }

    pub fn unsupported_operation(service: &str, operation: &str) -> Self {
        Self::new(
            CommonError::UnsupportedOperation,
            format!("Keyhold does not support the {service} operation {operation}."),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            CommonError::InternalFailure,
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
    pub fn query_code(&self) -> &'static str {
        self.query_code
    }
    pub fn status(&self) -> u16 {
        self.status
    }
    pub fn sender_fault(&self) -> bool {
        self.sender_fault
    }
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
    pub fn message_key(&self) -> Option<&'static str> {
        self.message_key
    }

    /// The JSON 1.1 body: `{"__type": CODE, "message": MESSAGE}`.
    pub fn to_json(&self, default_message_key: &str) -> Vec<u8> {
        let mut map = serde_json::Map::new();
        map.insert("__type".into(), self.code.into());
        if let Some(message) = &self.message {
            let key = self.message_key.unwrap_or(default_message_key);
            map.insert(key.into(), message.as_ref().into());
        }
        serde_json::to_vec(&serde_json::Value::Object(map)).unwrap_or_default()
    }

    /// The awsQuery body: `<ErrorResponse>` with `<Error>` and `<RequestId>`.
    pub fn to_xml(&self, namespace: &str, request_id: &str) -> String {
        let mut w = super::xml::XmlWriter::new();
        w.open_with_ns("ErrorResponse", namespace);
        w.open("Error");
        w.element(
            "Type",
            if self.sender_fault {
                "Sender"
            } else {
                "Receiver"
            },
        );
        w.element("Code", self.query_code);
        if let Some(message) = &self.message {
            w.element("Message", message);
        }
        w.close("Error");
        w.element("RequestId", request_id);
        w.close("ErrorResponse");
        w.finish()
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{} ({}): {m}", self.code, self.status),
            None => write!(f, "{} ({})", self.code, self.status),
        }
    }
}

impl std::error::Error for ApiError {}

impl From<CommonError> for ApiError {
    fn from(code: CommonError) -> Self {
        Self::bare(code)
    }
}
