//! Positions of the nodes of a YAML document, keyed by their path (`rules[3].when.sites[0]`),
//! so that errors found after deserialisation (bad regex, unknown category, duplicate id…)
//! point at the offending value, and serde errors at the offending key.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };
}

/// One step of a path into a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a path as `a.b[2].c`.
pub fn path_string(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
        }
    }
    s
}

/// Where every value and every mapping key of a document starts.
#[derive(Debug, Default)]
pub struct PositionIndex {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

enum Frame {
    Map {
        key: Option<String>,
    },
    Seq {
        next: usize,
    },
    /// A complex (non-scalar) mapping key: its contents are not indexed.
    Ignored {
        depth: usize,
    },
}

impl PositionIndex {
    /// Indexes `text`. A syntax error is returned with its position.
    pub fn build(text: &str) -> Result<PositionIndex, (Pos, String)> {
        let mut index = PositionIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut path: Vec<Seg> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| {
                (
                    Pos {
                        line: e.marker().line().max(1),
                        column: e.marker().col() + 1,
                    },
                    e.info().to_string(),
                )
            })?;
            let pos = Pos {
                line: span.start.line().max(1),
                column: span.start.col() + 1,
            };
            let starts_node = matches!(
                event,
                Event::Scalar(..)
                    | Event::MappingStart(..)
                    | Event::SequenceStart(..)
                    | Event::Alias(..)
            );
            if let Some(Frame::Ignored { depth }) = stack.last_mut() {
                match event {
                    Event::MappingStart(..) | Event::SequenceStart(..) => *depth += 1,
                    Event::MappingEnd | Event::SequenceEnd => {
                        *depth -= 1;
                        if *depth == 0 {
                            stack.pop();
                        }
                    }
                    _ => {}
                }
                continue;
            }
            if starts_node {
                // Work out whether this node is a key, a map value or a list item.
                let mut is_key = false;
                let mut pushed_seg = false;
                match stack.last_mut() {
                    Some(Frame::Map { key }) => {
                        if key.is_none() {
                            is_key = true;
                            match &event {
                                Event::Scalar(v, ..) => {
                                    let k = v.to_string();
                                    let mut p = path.clone();
                                    p.push(Seg::Key(k.clone()));
                                    index.keys.insert(path_string(&p), pos);
                                    *key = Some(k);
                                }
                                Event::Alias(..) => *key = Some(String::new()),
                                _ => {
                                    *key = Some(String::new());
                                    stack.push(Frame::Ignored { depth: 1 });
                                }
                            }
                        } else if let Some(k) = key.take() {
                            path.push(Seg::Key(k));
                            pushed_seg = true;
                        }
                    }
                    Some(Frame::Seq { next }) => {
                        path.push(Seg::Index(*next));
                        *next += 1;
                        pushed_seg = true;
                    }
                    _ => {}
                }
                if is_key {
                    continue;
                }
                index.values.entry(path_string(&path)).or_insert(pos);
                match event {
                    Event::MappingStart(..) => stack.push(Frame::Map { key: None }),
                    Event::SequenceStart(..) => stack.push(Frame::Seq { next: 0 }),
                    _ => {
                        if pushed_seg {
                            path.pop();
                        }
                    }
                }
                continue;
            }
            match event {
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    // The container was a value (or an item): leave its segment.
                    if matches!(
                        stack.last(),
                        Some(Frame::Map { .. }) | Some(Frame::Seq { .. })
                    ) {
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        Ok(index)
    }

    /// The position of the value at `path`, or of its nearest indexed ancestor.
    pub fn value(&self, path: &[Seg]) -> Pos {
        let mut p = path.to_vec();
        loop {
            if let Some(pos) = self.values.get(&path_string(&p)) {
                return *pos;
            }
            if p.pop().is_none() {
                return Pos::START;
            }
        }
    }

    /// The position of the key that ends `path` (falling back to the value's position).
    pub fn key(&self, path: &[Seg]) -> Pos {
        match self.keys.get(&path_string(path)) {
            Some(pos) => *pos,
            None => self.value(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Seg {
        Seg::Key(s.to_string())
    }

    #[test]
    fn indexes_block_and_flow_nodes() {
        let text = "rules:\n  - id: a\n    when: { sites: [x, y] }\n  - id: b\n    action: block\n";
        let idx = PositionIndex::build(text).unwrap();
        assert_eq!(
            idx.value(&[k("rules"), Seg::Index(1), k("id")]),
            Pos { line: 4, column: 9 }
        );
        assert_eq!(
            idx.key(&[k("rules"), Seg::Index(1), k("action")]),
            Pos { line: 5, column: 5 }
        );
        assert_eq!(
            idx.value(&[
                k("rules"),
                Seg::Index(0),
                k("when"),
                k("sites"),
                Seg::Index(1)
            ]),
            Pos {
                line: 3,
                column: 24
            }
        );
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(
            idx.value(&[k("rules"), Seg::Index(1), k("nope")]),
            Pos { line: 4, column: 5 }
        );
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let err = PositionIndex::build("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.0.line >= 1);
        assert!(!err.1.is_empty());
    }
}
