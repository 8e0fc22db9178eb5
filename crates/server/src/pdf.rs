//! Printable A4 PDF documents of plain text: letters with an address block, and the public
//! announcement. Latin scripts use the standard Helvetica font (WinAnsi encoding, no embedding);
//! Chinese uses Adobe's predefined STSong-Light CID font (UniGB-UCS2-H), which PDF readers
//! supply without embedding. That is all a notice needs, in about a hundred lines, where a PDF
//! crate would add minutes of compile time.

const WIDTH: f32 = 595.28;
const HEIGHT: f32 = 841.89;
const MARGIN: f32 = 64.0;
const SIZE: f32 = 11.0;
const LEADING: f32 = 15.0;

/// A document: pages of lines placed from the top.
pub struct Document {
    cjk: bool,
    pages: Vec<String>,
    y: f32,
}

fn is_cjk(c: char) -> bool {
    ('\u{2e80}'..='\u{9fff}').contains(&c) || ('\u{ff00}'..='\u{ffef}').contains(&c)
}

fn has_cjk(s: &str) -> bool {
    s.chars().any(is_cjk)
}

/// Width of a character in text-space units of 1/SIZE.
fn advance(c: char, cjk: bool) -> f32 {
    if cjk || is_cjk(c) {
        1.0
    } else if c.is_ascii_uppercase() || c == 'm' || c == 'w' {
        0.72
    } else {
        0.5
    }
}

impl Document {
    /// A new document; `sample` decides the font (Chinese text needs the CID font).
    pub fn new(sample: &str) -> Self {
        Self {
            cjk: has_cjk(sample),
            pages: vec![String::new()],
            y: HEIGHT - MARGIN,
        }
    }

    fn encode(&self, text: &str) -> String {
        if self.cjk {
            let mut hex = String::from("<");
            for unit in text.encode_utf16() {
                hex.push_str(&format!("{unit:04X}"));
            }
            hex.push('>');
            hex
        } else {
            let mut s = String::from("(");
            for c in text.chars() {
                match c {
                    '(' | ')' | '\\' => {
                        s.push('\\');
                        s.push(c);
                    }
                    c if c.is_ascii() && !c.is_ascii_control() => s.push(c),
                    // WinAnsi matches Latin-1 here; the rest has no glyph in Helvetica.
                    c if (c as u32) < 256 && !c.is_control() => {
                        s.push_str(&format!("\\{:03o}", c as u32));
                    }
                    _ => s.push('?'),
                }
            }
            s.push(')');
            s
        }
    }

    /// Moves down to `y` points from the bottom (for the address block's window).
    pub fn at(&mut self, y: f32) {
        self.y = y;
    }

    /// Writes text at `x` from the left margin, wrapping to the page width and breaking pages.
    pub fn text(&mut self, text: &str, x: f32) {
        let max = (WIDTH - 2.0 * MARGIN - x) / SIZE;
        for paragraph in text.split('\n') {
            let mut line = String::new();
            let mut width = 0.0;
            let mut words: Vec<String> = Vec::new();
            if self.cjk {
                words.extend(paragraph.chars().map(String::from));
            } else {
                words.extend(paragraph.split(' ').map(|w| format!("{w} ")));
            }
            for w in words {
                let ww: f32 = w.chars().map(|c| advance(c, self.cjk)).sum();
                if width + ww > max && !line.is_empty() {
                    self.line(line.trim_end(), x);
                    line.clear();
                    width = 0.0;
                }
                line.push_str(&w);
                width += ww;
            }
            self.line(line.trim_end(), x);
        }
    }

    fn line(&mut self, text: &str, x: f32) {
        if self.y < MARGIN {
            self.pages.push(String::new());
            self.y = HEIGHT - MARGIN;
        }
        let op = format!(
            "BT /F1 {SIZE} Tf {:.2} {:.2} Td {} Tj ET\n",
            MARGIN + x,
            self.y,
            self.encode(text)
        );
        if let Some(p) = self.pages.last_mut() {
            p.push_str(&op);
        }
        self.y -= LEADING;
    }

    /// The PDF file.
    pub fn finish(self) -> Vec<u8> {
        let n = self.pages.len();
        // Objects: 1 catalog, 2 pages, 3.. fonts, then a page and a content stream per page.
        let mut objects: Vec<String> = Vec::new();
        objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
        let first_page = if self.cjk { 6 } else { 4 };
        let kids: Vec<String> = (0..n)
            .map(|i| format!("{} 0 R", first_page + 2 * i))
            .collect();
        objects.push(format!(
            "<< /Type /Pages /Kids [{}] /Count {n} >>",
            kids.join(" ")
        ));
        if self.cjk {
            objects.push("<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H /DescendantFonts [4 0 R] >>".into());
            objects.push("<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 2 >> /FontDescriptor 5 0 R /DW 1000 >>".into());
            objects.push("<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880] /ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>".into());
        } else {
            objects.push(
                "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
                    .into(),
            );
        }
        for (i, content) in self.pages.iter().enumerate() {
            objects.push(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {WIDTH} {HEIGHT}] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                first_page + 2 * i + 1
            ));
            objects.push(format!(
                "<< /Length {} >>\nstream\n{content}endstream",
                content.len()
            ));
        }
        let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
        let mut offsets = Vec::with_capacity(objects.len());
        for (i, o) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
        );
        for off in offsets {
            out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        out
    }
}

/// A letter: the recipient's name and address in the window of a DL envelope (45 mm from the
/// top), then the title and the message (which the sender signs).
pub fn letter(name: &str, address: &str, title: &str, body: &str) -> Vec<u8> {
    let mut d = Document::new(&format!("{title}{body}"));
    d.at(HEIGHT - 45.0 * 72.0 / 25.4 - 12.0);
    d.text(name, 0.0);
    d.text(address, 0.0);
    d.at(HEIGHT - 100.0 * 72.0 / 25.4);
    d.text(title, 0.0);
    d.text("", 0.0);
    d.text(body, 0.0);
    d.finish()
}

/// A document of a title and text (the public announcement).
pub fn document(title: &str, body: &str) -> Vec<u8> {
    let mut d = Document::new(&format!("{title}{body}"));
    d.text(title, 0.0);
    d.text("", 0.0);
    d.text(body, 0.0);
    d.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// One ASCII character per byte, so that string offsets are file offsets.
    fn ascii(pdf: &[u8]) -> String {
        pdf.iter()
            .map(|&b| if b.is_ascii() { b as char } else { '?' })
            .collect()
    }

    fn xref_ok(pdf: &[u8]) {
        let s = ascii(pdf);
        let start: usize = s
            .rsplit("startxref\n")
            .next()
            .and_then(|t| t.lines().next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(
            s[start..].starts_with("xref"),
            "startxref points at the table"
        );
        // Every offset in the table points at its object.
        for (i, line) in s[start..]
            .lines()
            .skip(3)
            .take_while(|l| l.ends_with(" n "))
            .enumerate()
        {
            let off: usize = line[..10].parse().unwrap();
            assert!(
                s[off..].starts_with(&format!("{} 0 obj", i + 1)),
                "object {}",
                i + 1
            );
        }
    }

    #[test]
    fn latin_letter_is_a_valid_pdf_with_the_text() {
        let pdf = letter(
            "Ana Pérez",
            "Calle Mayor 1\n28013 Madrid",
            "Aviso",
            "Texto (uno)",
        );
        assert!(pdf.starts_with(b"%PDF-1.4"));
        assert!(pdf.ends_with(b"%%EOF\n"));
        xref_ok(&pdf);
        let s = String::from_utf8_lossy(&pdf);
        assert!(s.contains("/Helvetica"));
        assert!(
            s.contains("(Ana P\\351rez)"),
            "WinAnsi é as an octal escape"
        );
        assert!(s.contains("Texto \\(uno\\)"));
    }

    #[test]
    fn chinese_uses_the_cid_font_and_long_text_breaks_pages() {
        let body = "个人信息安全事件。".repeat(400);
        let pdf = document("公告", &body);
        xref_ok(&pdf);
        let s = String::from_utf8_lossy(&pdf);
        assert!(s.contains("/STSong-Light"));
        assert!(s.contains("<516C544A>"), "公告 in UCS-2");
        let count: usize = s
            .split("/Count ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(count > 1, "pages: {count}");
    }
}
