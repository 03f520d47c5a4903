//! A minimal XML writer for awsQuery responses: elements, escaped text, nothing else.

pub struct XmlWriter {
    out: String,
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlWriter {
    pub fn new() -> Self {
        Self {
            out: String::with_capacity(512),
        }
    }
    pub fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }
    pub fn open_with_ns(&mut self, name: &str, namespace: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(" xmlns=\"");
        escape_into(&mut self.out, namespace);
        self.out.push_str("\">");
    }
    pub fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }
    pub fn text(&mut self, text: &str) {
        escape_into(&mut self.out, text);
    }
    pub fn element(&mut self, name: &str, text: &str) {
        self.open(name);
        self.text(text);
        self.close(name);
    }
    pub fn finish(self) -> String {
        self.out
    }
}

/// Types the generated code can write as awsQuery response XML.
pub trait ToXml {
    /// Writes the members of `self` (not an enclosing element).
    fn write_members(&self, w: &mut XmlWriter);
}

/// Escapes markup, and replaces what XML 1.0 cannot carry at all (NUL and the other C0
/// controls but tab, LF and CR; U+FFFE and U+FFFF) with U+FFFD: such a character is not
/// allowed even as a character reference, and echoing it (an error message quoting request
/// input) would make the whole response unparseable, so the client would see a parser error
/// instead of the error code. A Rust `str` holds no lone surrogates, the only other
/// characters XML excludes.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            '\t' | '\n' => out.push(c),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text() {
        let mut w = XmlWriter::new();
        w.element("A", "<&>\"'");
        assert_eq!(w.finish(), "<A>&lt;&amp;&gt;&quot;&apos;</A>");
    }

    #[test]
    fn replaces_characters_xml_forbids() {
        let mut w = XmlWriter::new();
        w.element("A", "a\u{0}b\u{1}\u{1f}\t\n\r\u{fffe}\u{ffff}\u{fffd}é");
        assert_eq!(
            w.finish(),
            "<A>a\u{fffd}b\u{fffd}\u{fffd}\t\n&#xD;\u{fffd}\u{fffd}\u{fffd}é</A>"
        );
    }
}
