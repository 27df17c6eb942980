//! A walk over a term in the external format, without decoding it, for the two facts the
//! shared state needs: where its `-0.0` floats are (to match keys as map keys match) and
//! whether it can be decoded safely in a process-independent environment.
//!
//! The walk keeps a count of the terms still to read instead of recursing: every term's
//! children follow it in the encoding, so a deeply nested term cannot exhaust the stack.

/// What a walk found.
pub struct Scan {
    /// Offsets of the 8-byte payloads of `NEW_FLOAT_EXT` floats that are `-0.0`.
    pub negative_zeros: Vec<usize>,
    /// A map of more than 32 keys, a fun (whose environment the walk does not read), or an
    /// encoding the walk does not know: decoding must not happen in a process-independent
    /// environment (OTP 25 crashes decoding big maps there; OTP 27 does not, so the map
    /// counts only where `vm_release::big_maps_need_process_env`).
    pub needs_process_env: bool,
}

/// Maps of up to this many keys are flat maps; bigger ones are the ones to avoid.
const FLATMAP_MAX: u32 = 32;
const NEGATIVE_ZERO: [u8; 8] = [0x80, 0, 0, 0, 0, 0, 0, 0];

/// Walk `etf` (as `term_to_binary/1` makes it, version byte first).
pub fn scan(etf: &[u8]) -> Scan {
    let mut found = Scan { negative_zeros: Vec::new(), needs_process_env: false };
    if walk(etf, &mut found).is_none() {
        // Unknown or truncated: assume the worst, change nothing.
        found.negative_zeros.clear();
        found.needs_process_env = true;
    }
    found
}

fn walk(etf: &[u8], found: &mut Scan) -> Option<()> {
    let mut r = Reader { buf: etf, pos: 0 };
    if r.u8()? != 131 {
        return None;
    }
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        match r.u8()? {
            97 => r.skip(1)?,
            98 => r.skip(4)?,
            99 => r.skip(31)?,
            70 => {
                if r.peek(8)? == NEGATIVE_ZERO {
                    found.negative_zeros.push(r.pos);
                }
                r.skip(8)?
            }
            100 | 118 => {
                let n = r.u16()?;
                r.skip(n)?
            }
            115 | 119 => {
                let n = r.u8()? as usize;
                r.skip(n)?
            }
            106 => {}
            107 => {
                let n = r.u16()?;
                r.skip(n)?
            }
            109 => {
                let n = r.u32()? as usize;
                r.skip(n)?
            }
            77 => {
                let n = r.u32()? as usize;
                r.skip(n + 1)?
            }
            110 => {
                let n = r.u8()? as usize;
                r.skip(n + 1)?
            }
            111 => {
                let n = r.u32()? as usize;
                r.skip(n + 1)?
            }
            104 => pending += r.u8()? as u64,
            105 => pending += r.u32()? as u64,
            108 => pending += r.u32()? as u64 + 1,
            116 => {
                let arity = r.u32()?;
                if arity > FLATMAP_MAX && crate::vm_release::big_maps_need_process_env() {
                    found.needs_process_env = true;
                }
                pending += 2 * arity as u64;
            }
            113 => pending += 3,
            88 => r.atom_then(12)?,
            103 => r.atom_then(9)?,
            89 => r.atom_then(8)?,
            120 => r.atom_then(12)?,
            102 => r.atom_then(5)?,
            101 => r.atom_then(5)?,
            90 => {
                let words = r.u16()?;
                r.atom_then(4 + 4 * words)?
            }
            114 => {
                let words = r.u16()?;
                r.atom_then(1 + 4 * words)?
            }
            112 => {
                found.needs_process_env = true;
                let size = r.u32()? as usize;
                r.skip(size.checked_sub(4)?)?
            }
            _ => return None,
        }
    }
    (r.pos == etf.len()).then_some(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self, n: usize) -> Option<&[u8]> {
        self.buf.get(self.pos..self.pos.checked_add(n)?)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.peek(n)?;
        self.pos += n;
        Some(())
    }

    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn u16(&mut self) -> Option<usize> {
        let b = self.peek(2)?;
        let n = u16::from_be_bytes([b[0], b[1]]) as usize;
        self.pos += 2;
        Some(n)
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.peek(4)?;
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        self.pos += 4;
        Some(n)
    }

    /// A node name (an atom) followed by `n` bytes, as in pids, ports and references.
    fn atom_then(&mut self, n: usize) -> Option<()> {
        match self.u8()? {
            100 | 118 => {
                let len = self.u16()?;
                self.skip(len)?
            }
            115 | 119 => {
                let len = self.u8()? as usize;
                self.skip(len)?
            }
            _ => return None,
        }
        self.skip(n)
    }
}
