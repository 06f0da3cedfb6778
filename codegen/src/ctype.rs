//! C declarations as the manifest spells them.
//!
//! The manifest stores every prototype, parameter and struct field as one line
//! of C (`cudaError_t cudaMalloc(void **devPtr, size_t size)`), so that a
//! reviewer reads a CUDA bump as C, the language NVIDIA documents it in. This
//! module parses that canonical subset of C and prints it back byte for byte:
//! a base type (one or more words, `const` first), pointer levels (each
//! possibly `const`), a name, and for struct fields an array length. Function
//! pointer types never appear inline: the headers name them with `typedef`s,
//! which the type table records (see [`crate::manifest::TypeDef`]).

use std::fmt;

/// Words that may make up a builtin base type.
const BUILTIN_WORDS: &[&str] = &[
    "void", "char", "short", "int", "long", "float", "double", "signed", "unsigned", "_Bool",
];

/// A C type: `const unsigned int *const *`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CType {
    /// `const` on the base type.
    pub is_const: bool,
    /// The base type: `unsigned int`, `struct dim3`, `enum cudaError`, `cudaStream_t`.
    pub base: String,
    /// One entry per `*`, outermost last; `true` where the pointer itself is `const`.
    pub pointers: Vec<bool>,
}

/// A named declaration: a parameter or a struct field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decl {
    /// The declared type.
    pub ty: CType,
    /// The declared name.
    pub name: String,
    /// `Some(n)` for an array `name[n]` (struct fields only).
    pub array: Option<u64>,
}

/// A function prototype: `cudaError_t cudaMalloc(void **devPtr, size_t size)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Prototype {
    /// The return type.
    pub returns: CType,
    /// The function's name; empty in a function pointer `typedef`'s signature.
    pub name: String,
    /// The parameters, in order. `(void)` is stored as no parameters.
    pub params: Vec<Decl>,
}

/// A parse error at a byte offset of the parsed text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the parsed string.
    pub offset: usize,
    /// What was expected or found.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

impl std::error::Error for ParseError {}

impl CType {
    /// A plain, non-pointer type named `base`.
    pub fn named(base: impl Into<String>) -> Self {
        CType {
            is_const: false,
            base: base.into(),
            pointers: Vec::new(),
        }
    }

    /// `true` for `void` with no pointer.
    pub fn is_void(&self) -> bool {
        self.base == "void" && self.pointers.is_empty()
    }

    /// `true` when the type is a pointer at its outermost level.
    pub fn is_pointer(&self) -> bool {
        !self.pointers.is_empty()
    }

    /// `true` when the base type is a C builtin (`unsigned int`, `char`, …).
    pub fn is_builtin(&self) -> bool {
        is_builtin_base(&self.base)
    }

    /// `true` for the `const char *` of C strings.
    pub fn is_c_string(&self) -> bool {
        self.base == "char" && self.pointers.len() == 1
    }
}

/// `true` when `base` consists of builtin words only (`unsigned long long`).
pub fn is_builtin_base(base: &str) -> bool {
    base.split(' ').all(|w| BUILTIN_WORDS.contains(&w))
}

/// The one spelling the manifest uses for a builtin type written with the
/// words `words` in any order C allows: `long long int`, `signed long long`
/// and `long signed long int` are all `long long`; `unsigned` is
/// `unsigned int`; `signed char` stays distinct from `char`.
///
/// Every consumer (the Rust emitter, layouts, tracing) then knows one name
/// per type. An impossible combination (`unsigned float`, `long char`,
/// `short long`) is an error, and so is `long double`, which has no Rust
/// equivalent a shim could forward.
pub fn canonical_builtin(words: &[&str]) -> Result<&'static str, String> {
    let count = |w: &str| words.iter().filter(|x| **x == w).count();
    let (signed, unsigned, short, long) = (
        count("signed"),
        count("unsigned"),
        count("short"),
        count("long"),
    );
    let rest: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !matches!(*w, "signed" | "unsigned" | "short" | "long"))
        .collect();
    let not_a_type = || Err(format!("`{}` is not a C type", words.join(" ")));
    if signed + unsigned > 1 || rest.len() > 1 || short > 1 || long > 2 || short * long > 0 {
        return not_a_type();
    }
    let modifiers = signed + unsigned + short + long;
    let u = usize::from(unsigned == 1);
    Ok(match (rest.first().copied(), short, long) {
        (Some("double"), 0, 1) if signed + unsigned == 0 => {
            return Err("`long double` has no Rust equivalent and is not supported".into());
        }
        (Some(plain @ ("void" | "float" | "double" | "_Bool")), ..) => {
            if modifiers > 0 {
                return not_a_type();
            }
            match plain {
                "void" => "void",
                "float" => "float",
                "double" => "double",
                _ => "_Bool",
            }
        }
        (Some("char"), 0, 0) => ["char", "signed char", "unsigned char"][signed + 2 * unsigned],
        (Some("int") | None, 1, 0) => ["short", "unsigned short"][u],
        (Some("int") | None, 0, 1) => ["long", "unsigned long"][u],
        (Some("int") | None, 0, 2) => ["long long", "unsigned long long"][u],
        (Some("int"), 0, 0) => ["int", "unsigned int"][u],
        (None, 0, 0) if modifiers > 0 => ["int", "unsigned int"][u],
        _ => return not_a_type(),
    })
}

impl fmt::Display for CType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_const {
            f.write_str("const ")?;
        }
        f.write_str(&self.base)?;
        if !self.pointers.is_empty() {
            f.write_str(" ")?;
        }
        for (i, is_const) in self.pointers.iter().enumerate() {
            f.write_str("*")?;
            if *is_const {
                f.write_str("const")?;
                if i + 1 < self.pointers.len() {
                    f.write_str(" ")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Decl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ty)?;
        // `char *name` but `unsigned int x` and `char *const name`.
        if self.ty.pointers.last() != Some(&false) {
            f.write_str(" ")?;
        }
        f.write_str(&self.name)?;
        if let Some(n) = self.array {
            write!(f, "[{n}]")?;
        }
        Ok(())
    }
}

impl fmt::Display for Prototype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.returns)?;
        if self.returns.pointers.last() != Some(&false) {
            f.write_str(" ")?;
        }
        f.write_str(&self.name)?;
        f.write_str("(")?;
        if self.params.is_empty() {
            f.write_str("void")?;
        }
        for (i, p) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{p}")?;
        }
        f.write_str(")")
    }
}

/// Tokens of the subset: identifiers, `*`, `(`, `)`, `,`, `[`, `]`, numbers.
#[derive(Clone, Debug, PartialEq)]
enum Token<'a> {
    Word(&'a str),
    Number(u64),
    Punct(char),
}

struct Lexer<'a> {
    tokens: Vec<(usize, Token<'a>)>,
    pos: usize,
    len: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Result<Self, ParseError> {
        let bytes = text.as_bytes();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if c == b' ' {
                i += 1;
            } else if c.is_ascii_alphabetic() || c == b'_' {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                tokens.push((start, Token::Word(&text[start..i])));
            } else if c.is_ascii_digit() {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let n = text[start..i].parse().map_err(|_| ParseError {
                    offset: start,
                    message: "number out of range".into(),
                })?;
                tokens.push((start, Token::Number(n)));
            } else if b"*(),[]".contains(&c) {
                tokens.push((i, Token::Punct(c as char)));
                i += 1;
            } else {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(ParseError {
                    offset: i,
                    message: format!("unexpected character `{ch}`"),
                });
            }
        }
        Ok(Lexer {
            tokens,
            pos: 0,
            len: text.len(),
        })
    }

    fn peek(&self) -> Option<&Token<'a>> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.len, |(o, _)| *o)
    }

    fn next(&mut self) -> Option<Token<'a>> {
        let t = self.tokens.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        t
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            offset: self.offset(),
            message: message.into(),
        })
    }

    fn expect(&mut self, c: char) -> Result<(), ParseError> {
        if self.peek() == Some(&Token::Punct(c)) {
            self.pos += 1;
            Ok(())
        } else {
            self.error(format!("expected `{c}`"))
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    /// A type followed by a declarator name: `const char *const *name`.
    ///
    /// The name is the last word before a `*`-free end; with `name_optional`
    /// a bare type is accepted too (function pointer signatures).
    fn decl(&mut self, name_optional: bool) -> Result<(CType, Option<String>), ParseError> {
        let mut words: Vec<&str> = Vec::new();
        let mut is_const = false;
        let start = self.offset();
        while let Some(Token::Word(w)) = self.peek() {
            let w = *w;
            self.pos += 1;
            if w == "const" {
                if !words.is_empty() || is_const {
                    return Err(ParseError {
                        offset: start,
                        message: "write `const` before the base type".into(),
                    });
                }
                is_const = true;
            } else {
                words.push(w);
            }
        }
        let mut pointers = Vec::new();
        let mut name = None;
        loop {
            match self.peek() {
                Some(Token::Punct('*')) => {
                    self.pos += 1;
                    pointers.push(false);
                }
                Some(Token::Word("const")) if !pointers.is_empty() => {
                    self.pos += 1;
                    *pointers.last_mut().expect("checked non-empty") = true;
                }
                Some(Token::Word(w)) if !pointers.is_empty() => {
                    name = Some(w.to_string());
                    self.pos += 1;
                    break;
                }
                _ => break,
            }
        }
        if pointers.is_empty() && words.len() >= 2 {
            // `unsigned int x` or `struct dim3 d`: the last word is the name,
            // unless the whole thing is a builtin type written alone.
            let all_builtin = is_builtin_base(&words.join(" "));
            let keyword_pair = matches!(words[0], "struct" | "enum" | "union") && words.len() == 2;
            if !(name_optional && (all_builtin || keyword_pair)) {
                name = words.pop().map(str::to_string);
            }
        }
        if words.is_empty() {
            return Err(ParseError {
                offset: start,
                message: "expected a type".into(),
            });
        }
        if matches!(words[0], "struct" | "enum" | "union") && words.len() != 2 {
            return Err(ParseError {
                offset: start,
                message: format!("`{}` must be followed by exactly one tag name", words[0]),
            });
        }
        if words.len() > 1
            && !matches!(words[0], "struct" | "enum" | "union")
            && !is_builtin_base(&words.join(" "))
        {
            return Err(ParseError {
                offset: start,
                message: format!("`{}` is not a type", words.join(" ")),
            });
        }
        if name.is_none() && !name_optional {
            return self.error("expected a name after the type");
        }
        if let Some(n) = &name
            && (BUILTIN_WORDS.contains(&n.as_str())
                || matches!(n.as_str(), "struct" | "enum" | "union"))
        {
            // `long long` with a name required: the second `long` is no name.
            return Err(ParseError {
                offset: start,
                message: format!("expected a name after `{}`", words.join(" ")),
            });
        }
        let base = if is_builtin_base(&words.join(" ")) {
            canonical_builtin(&words)
                .map_err(|message| ParseError {
                    offset: start,
                    message,
                })?
                .to_string()
        } else {
            words.join(" ")
        };
        Ok((
            CType {
                is_const,
                base,
                pointers,
            },
            name,
        ))
    }
}

/// Parses a prototype: `RET NAME(PARAMS)`, or `RET (PARAMS)` for a function
/// pointer's signature.
pub fn parse_prototype(text: &str) -> Result<Prototype, ParseError> {
    let mut lx = Lexer::new(text)?;
    let (returns, name) = lx.decl(true)?;
    lx.expect('(')?;
    let mut params = Vec::new();
    if lx.peek() == Some(&Token::Word("void"))
        && lx.tokens.get(lx.pos + 1).map(|t| &t.1) == Some(&Token::Punct(')'))
    {
        lx.pos += 1;
    } else if lx.peek() != Some(&Token::Punct(')')) {
        loop {
            let (ty, pname) = lx.decl(false)?;
            params.push(Decl {
                ty,
                name: pname.expect("decl(false) yields a name"),
                array: None,
            });
            if lx.peek() == Some(&Token::Punct(',')) {
                lx.pos += 1;
            } else {
                break;
            }
        }
    }
    lx.expect(')')?;
    if !lx.at_end() {
        return lx.error("unexpected text after the prototype");
    }
    Ok(Prototype {
        returns,
        name: name.unwrap_or_default(),
        params,
    })
}

/// Parses a struct field or parameter declaration: `unsigned char reserved[64]`.
pub fn parse_decl(text: &str) -> Result<Decl, ParseError> {
    let mut lx = Lexer::new(text)?;
    let (ty, name) = lx.decl(false)?;
    let mut array = None;
    if lx.peek() == Some(&Token::Punct('[')) {
        lx.pos += 1;
        match lx.next() {
            Some(Token::Number(n)) => array = Some(n),
            _ => {
                return Err(ParseError {
                    offset: lx.offset().saturating_sub(1),
                    message: "expected an array length".into(),
                });
            }
        }
        lx.expect(']')?;
    }
    if !lx.at_end() {
        return lx.error("unexpected text after the declaration");
    }
    Ok(Decl {
        ty,
        name: name.expect("decl(false) yields a name"),
        array,
    })
}

/// Parses a bare type: `const struct cudaMemLocation *`.
pub fn parse_type(text: &str) -> Result<CType, ParseError> {
    let mut lx = Lexer::new(text)?;
    let (ty, name) = lx.decl(true)?;
    if let Some(name) = name {
        return Err(ParseError {
            offset: text.rfind(&name).unwrap_or(0),
            message: format!("unexpected name `{name}` in a type"),
        });
    }
    if !lx.at_end() {
        return lx.error("unexpected text after the type");
    }
    Ok(ty)
}

/// `true` for a valid C identifier.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prototypes_round_trip() {
        for text in [
            "cudaError_t cudaMalloc(void **devPtr, size_t size)",
            "cudaError_t cudaLaunchKernel(const void *func, dim3 gridDim, dim3 blockDim, void **args, size_t sharedMem, cudaStream_t stream)",
            "unsigned int __cudaPushCallConfiguration(dim3 gridDim, dim3 blockDim, size_t sharedMem, struct CUstream_st *stream)",
            "struct cudaChannelFormatDesc cudaCreateChannelDesc(int x, int y, int z, int w, enum cudaChannelFormatKind f)",
            "const char *cudaGetErrorString(cudaError_t error)",
            "void **__cudaRegisterFatBinary(void *fatCubin)",
            "cudaError_t cudaProfilerStart(void)",
            "void (void *userData)",
            "cudaError_t cudaX(const char *const *names, unsigned long long n)",
        ] {
            let p = parse_prototype(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(p.to_string(), text);
        }
    }

    #[test]
    fn decls_round_trip() {
        for text in [
            "char reserved[64]",
            "unsigned int x",
            "enum cudaMemLocationType type",
            "void *ptr",
            "struct cudaMemLocation__anon_1 __anon_1",
        ] {
            assert_eq!(parse_decl(text).unwrap().to_string(), text);
        }
        assert_eq!(
            parse_type("const struct X *").unwrap().to_string(),
            "const struct X *"
        );
    }

    /// Regression: `long long int` parsed, then the Rust emitter panicked on
    /// the unknown base `long long int`. Every spelling C allows now reads
    /// as the one canonical spelling.
    #[test]
    fn builtin_spellings_are_canonical() {
        for (written, canonical) in [
            ("long long int", "long long"),
            ("signed long long int", "long long"),
            ("long signed long", "long long"),
            ("unsigned long long int", "unsigned long long"),
            ("long long unsigned", "unsigned long long"),
            ("long int", "long"),
            ("long unsigned int", "unsigned long"),
            ("short int", "short"),
            ("signed short", "short"),
            ("unsigned short int", "unsigned short"),
            ("unsigned", "unsigned int"),
            ("signed", "int"),
            ("signed int", "int"),
            ("int", "int"),
            ("char", "char"),
            ("signed char", "signed char"),
            ("char unsigned", "unsigned char"),
            ("_Bool", "_Bool"),
        ] {
            let t = parse_type(written).unwrap_or_else(|e| panic!("{written}: {e}"));
            assert_eq!(t.base, canonical, "{written}");
            let d = parse_decl(&format!("const {written} *x")).unwrap();
            assert_eq!(d.to_string(), format!("const {canonical} *x"));
            let p = parse_prototype(&format!("{written} f({written} a, {written} *b)")).unwrap();
            assert_eq!(
                p.to_string(),
                format!("{canonical} f({canonical} a, {canonical} *b)")
            );
        }
        for bad in [
            "unsigned float",
            "long char",
            "short long",
            "long long long",
            "signed unsigned",
            "int int",
            "unsigned void",
            "long double",
        ] {
            assert!(parse_type(bad).is_err(), "`{bad}` should not parse");
        }
        assert!(
            parse_decl("long long").is_err(),
            "the second `long` is no name"
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse_prototype("cudaError_t cudaMalloc(void **devPtr size_t size)").unwrap_err();
        assert_eq!(e.offset, 37, "{e}");
        assert!(parse_prototype("cudaError_t f(int x) junk").is_err());
        assert!(parse_decl("char x[").is_err());
        assert!(
            parse_prototype("cudaError_t f(int $x)")
                .unwrap_err()
                .message
                .contains('$')
        );
    }
}
