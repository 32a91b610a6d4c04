/// Parsers for the text forms of JSON_ARRAY values, over UTF-8 bytes (no Foundation).
enum SQLTextParsing {
    /// `[+-]digits` as Int64; nil when malformed or out of range.
    static func int64(_ b: UnsafeRawBufferPointer) -> Int64? {
        let n = b.count
        guard n > 0 else { return nil }
        var i = 0
        var negative = false
        if b[0] == 0x2D || b[0] == 0x2B {
            negative = b[0] == 0x2D
            i = 1
            guard n > 1 else { return nil }
        }
        var v: Int64 = 0
        while i < n {
            let d = b[i] &- 0x30
            guard d < 10 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.subtractingReportingOverflow(Int64(d))
            if o1 || o2 { return nil }
            v = s
            i += 1
        }
        if negative { return v }
        return v == .min ? nil : -v
    }

    /// A decimal floating-point literal (optional exponent), `NaN`, `Infinity`, `-Infinity` (also `inf`).
    static func double(_ b: UnsafeRawBufferPointer) -> Double? {
        let text = String(decoding: b, as: UTF8.self)
        switch text.lowercased() {
        case "nan", "+nan", "-nan": return .nan
        case "infinity", "+infinity", "inf", "+inf": return .infinity
        case "-infinity", "-inf": return -.infinity
        default: break
        }
        // Only plain decimal syntax: digits, sign, point, exponent (rejects hex floats and whitespace).
        guard !b.isEmpty, b.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E
            || $0 == 0x65 || $0 == 0x45 }), b.contains(where: { $0 >= 0x30 && $0 <= 0x39 })
        else { return nil }
        return Double(text)
    }

    /// `true` / `false`, any letter case.
    static func bool(_ b: UnsafeRawBufferPointer) -> Bool? {
        if b.count == 4, b.map({ $0 | 0x20 }).elementsEqual("true".utf8) { return true }
        if b.count == 5, b.map({ $0 | 0x20 }).elementsEqual("false".utf8) { return false }
        return nil
    }

    /// Fixed-width unsigned digits at `b[at..<at+count]`.
    static func digits(_ b: UnsafeRawBufferPointer, _ at: Int, _ count: Int) -> Int? {
        guard at + count <= b.count else { return nil }
        var v = 0
        for k in at..<(at + count) {
            let d = b[k] &- 0x30
            guard d < 10 else { return nil }
            v = v * 10 + Int(d)
        }
        return v
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        switch m {
        case 2: return isLeap(y) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
    static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = Int64((month + 9) % 12)
        let doy = (153 * mp + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Parses `YYYY-MM-DD` at the start of `b`; returns the fields and the index after them.
    static func datePrefix(_ b: UnsafeRawBufferPointer) -> (Int, Int, Int, Int)? {
        guard b.count >= 10, b[4] == 0x2D, b[7] == 0x2D,
            let y = digits(b, 0, 4), let m = digits(b, 5, 2), let d = digits(b, 8, 2),
            m >= 1, m <= 12, d >= 1, d <= daysInMonth(y, m)
        else { return nil }
        return (y, m, d, 10)
    }

    /// Exactly `YYYY-MM-DD`.
    static func date(_ b: UnsafeRawBufferPointer) -> (Int, Int, Int)? {
        guard let (y, m, d, end) = datePrefix(b), end == b.count else { return nil }
        return (y, m, d)
    }

    /// `YYYY-MM-DD[T| ]HH:MM[:SS[.f{1,9}]][Z|±HH[:MM]|±HHMM]`, or a bare date (midnight).
    ///
    /// - Returns: microseconds since the epoch (UTC when an offset is present or absent-but-allowed), and
    ///   the offset in seconds (nil when the text had none). Fraction digits beyond 6 are truncated.
    static func timestamp(_ b: UnsafeRawBufferPointer, allowOffset: Bool) -> (Int64, Int?)? {
        guard let (y, mo, d, dateEnd) = datePrefix(b) else { return nil }
        var i = dateEnd
        var hour = 0, minute = 0, second = 0, micros = 0
        let n = b.count
        if i < n, b[i] == 0x54 || b[i] == 0x20 || b[i] == 0x74 {
            i += 1
            guard let h = digits(b, i, 2), i + 5 <= n, b[i + 2] == 0x3A, let mi = digits(b, i + 3, 2),
                h < 24, mi < 60
            else { return nil }
            hour = h
            minute = mi
            i += 5
            if i < n, b[i] == 0x3A {
                guard let s = digits(b, i + 1, 2), s < 60 else { return nil }
                second = s
                i += 3
                if i < n, b[i] == 0x2E {
                    i += 1
                    var count = 0
                    while i < n, b[i] >= 0x30 && b[i] <= 0x39 {
                        if count < 6 { micros = micros * 10 + Int(b[i] - 0x30) }
                        count += 1
                        i += 1
                    }
                    guard count >= 1 && count <= 9 else { return nil }
                    for _ in min(count, 6)..<6 { micros *= 10 }
                }
            }
        }
        var offset: Int? = nil
        if i < n {
            guard allowOffset else { return nil }
            if b[i] == 0x5A || b[i] == 0x7A {  // Z
                offset = 0
                i += 1
            } else if b[i] == 0x2B || b[i] == 0x2D {
                let sign = b[i] == 0x2D ? -1 : 1
                i += 1
                guard let oh = digits(b, i, 2), oh <= 18 else { return nil }
                i += 2
                var om = 0
                if i < n {
                    if b[i] == 0x3A { i += 1 }
                    guard let m = digits(b, i, 2), m < 60 else { return nil }
                    om = m
                    i += 2
                }
                offset = sign * (oh * 3600 + om * 60)
            } else {
                return nil
            }
        }
        guard i == n else { return nil }
        let days = daysFromCivil(y, mo, d)
        let secs = days * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offset ?? 0)
        return (secs * 1_000_000 + Int64(micros), offset)
    }

    /// BINARY text: base64 or hex according to `encoding`.
    static func binary(_ b: UnsafeRawBufferPointer, encoding: SQLValue.DecodingOptions.BinaryEncoding) -> [UInt8]? {
        switch encoding {
        case .hex: return hex(b)
        case .base64: return base64(b)
        case .automatic:
            if b.count >= 2, b[0] == 0x30, b[1] | 0x20 == 0x78 { return hex(b) }
            return base64(b) ?? hex(b)
        }
    }

    /// Hex digits (either case), optionally after `0x`; even length.
    static func hex(_ b: UnsafeRawBufferPointer) -> [UInt8]? {
        var start = 0
        if b.count >= 2, b[0] == 0x30, b[1] | 0x20 == 0x78 { start = 2 }
        let n = b.count - start
        guard n % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(n / 2)
        var k = start
        while k < b.count {
            guard let hi = ResultStreamDecoder.hexDigit(b[k]), let lo = ResultStreamDecoder.hexDigit(b[k + 1]) else {
                return nil
            }
            out.append(hi << 4 | lo)
            k += 2
        }
        return out
    }

    /// Standard base64 (`+/`, also URL-safe `-_`) with `=` padding to a multiple of 4.
    static func base64(_ b: UnsafeRawBufferPointer) -> [UInt8]? {
        let n = b.count
        guard n % 4 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt32? {
            switch c {
            case 0x41...0x5A: return UInt32(c - 0x41)
            case 0x61...0x7A: return UInt32(c - 0x61 + 26)
            case 0x30...0x39: return UInt32(c - 0x30 + 52)
            case 0x2B, 0x2D: return 62
            case 0x2F, 0x5F: return 63
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(n / 4 * 3)
        var k = 0
        while k < n {
            let last = k + 4 == n
            let c2 = b[k + 2], c3 = b[k + 3]
            guard let v0 = value(b[k]), let v1 = value(b[k + 1]) else { return nil }
            if last && c2 == 0x3D {
                guard c3 == 0x3D, v1 & 0x0F == 0 else { return nil }
                out.append(UInt8(v0 << 2 | v1 >> 4))
            } else if last && c3 == 0x3D {
                guard let v2 = value(c2), v2 & 0x03 == 0 else { return nil }
                let w = v0 << 18 | v1 << 12 | v2 << 6
                out.append(UInt8(truncatingIfNeeded: w >> 16))
                out.append(UInt8(truncatingIfNeeded: w >> 8))
            } else {
                guard let v2 = value(c2), let v3 = value(c3) else { return nil }
                let w = v0 << 18 | v1 << 12 | v2 << 6 | v3
                out.append(UInt8(truncatingIfNeeded: w >> 16))
                out.append(UInt8(truncatingIfNeeded: w >> 8))
                out.append(UInt8(truncatingIfNeeded: w))
            }
            k += 4
        }
        return out
    }
}
