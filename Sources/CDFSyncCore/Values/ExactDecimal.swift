/// An exact decimal number: `significand × 10^-scale`, parsed from text without going through `Double`.
///
/// Holds every Databricks `DECIMAL(p,s)` value (p ≤ 38 fits in `Int128`). Equality and hashing are numeric:
/// `1.50` equals `1.5`; ``description`` keeps the scale it was parsed with.
public struct ExactDecimal: Sendable, Hashable, CustomStringConvertible, Comparable {
    /// The unscaled integer value.
    public var significand: Int128
    /// Digits after the decimal point (≥ 0).
    public var scale: Int

    /// Creates `significand × 10^-scale`.
    public init(significand: Int128, scale: Int) {
        precondition(scale >= 0, "scale must not be negative")
        self.significand = significand
        self.scale = scale
    }

    /// Parses `[+-]digits[.digits][(e|E)[+-]digits]`; nil when malformed or out of range.
    public init?(_ text: String) {
        var t = text
        guard let v = t.withUTF8({ ExactDecimal.parse(UnsafeRawBufferPointer($0)) }) else { return nil }
        self = v
    }

    /// Parses UTF-8 bytes; see ``init(_:)``.
    public static func parse(_ b: UnsafeRawBufferPointer) -> ExactDecimal? {
        let n = b.count
        var i = 0
        var negative = false
        if i < n, b[i] == 0x2B || b[i] == 0x2D {
            negative = b[i] == 0x2D
            i += 1
        }
        var value: Int128 = 0
        var digits = 0
        var scale = 0
        var seenPoint = false
        while i < n {
            let c = b[i]
            if c == 0x2E {
                if seenPoint { return nil }
                seenPoint = true
            } else if c >= 0x30 && c <= 0x39 {
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(Int128(c - 0x30))
                if o1 || o2 { return nil }
                value = s
                digits += 1
                if seenPoint { scale += 1 }
            } else {
                break
            }
            i += 1
        }
        guard digits > 0 else { return nil }
        if i < n {
            guard b[i] == 0x65 || b[i] == 0x45 else { return nil }
            i += 1
            var expNegative = false
            if i < n, b[i] == 0x2B || b[i] == 0x2D {
                expNegative = b[i] == 0x2D
                i += 1
            }
            var exp = 0
            var expDigits = 0
            while i < n, b[i] >= 0x30 && b[i] <= 0x39 {
                exp = exp * 10 + Int(b[i] - 0x30)
                if exp > 1000 { return nil }
                expDigits += 1
                i += 1
            }
            guard expDigits > 0, i == n else { return nil }
            if expNegative {
                scale += exp
            } else if exp <= scale {
                scale -= exp
            } else {
                for _ in 0..<(exp - scale) {
                    let (m, o) = value.multipliedReportingOverflow(by: 10)
                    if o { return nil }
                    value = m
                }
                scale = 0
            }
            if scale > 76 { return nil }
        }
        return ExactDecimal(significand: negative ? -value : value, scale: scale)
    }

    /// The value with trailing fractional zeros removed (`1.500` → `1.5`, `2.0` → `2`).
    public var normalized: ExactDecimal {
        var s = significand
        var k = scale
        while k > 0 && s % 10 == 0 {
            s /= 10
            k -= 1
        }
        return ExactDecimal(significand: s, scale: k)
    }

    /// This value at `newScale` digits, or nil when digits would be lost or the result overflows.
    public func rescaled(to newScale: Int) -> ExactDecimal? {
        if newScale == scale { return self }
        if newScale > scale {
            var s = significand
            for _ in 0..<(newScale - scale) {
                let (m, o) = s.multipliedReportingOverflow(by: 10)
                if o { return nil }
                s = m
            }
            return ExactDecimal(significand: s, scale: newScale)
        }
        let n = normalized
        return n.scale <= newScale ? n.rescaled(to: newScale) : nil
    }

    public static func == (a: ExactDecimal, b: ExactDecimal) -> Bool {
        let x = a.normalized
        let y = b.normalized
        return x.significand == y.significand && x.scale == y.scale
    }

    public func hash(into hasher: inout Hasher) {
        let n = normalized
        hasher.combine(n.significand)
        hasher.combine(n.scale)
    }

    public static func < (a: ExactDecimal, b: ExactDecimal) -> Bool {
        let s = max(a.scale, b.scale)
        if let x = a.rescaled(to: s), let y = b.rescaled(to: s) { return x.significand < y.significand }
        // Only reachable near Int128's limits: compare digit strings exactly.
        return ExactDecimal.lessByDigits(a, b)
    }

    /// Plain decimal text with exactly ``scale`` fractional digits, e.g. `-0.0500`.
    public var description: String {
        let negative = significand < 0
        let magnitude = significand.magnitude
        var digits = String(magnitude)
        if scale > 0 {
            if digits.count <= scale {
                digits = String(repeating: "0", count: scale - digits.count + 1) + digits
            }
            digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -scale))
        }
        return negative ? "-" + digits : digits
    }
}

extension ExactDecimal {
    /// Exact `<` by comparing decimal digit strings (no overflow possible).
    fileprivate static func lessByDigits(_ a: ExactDecimal, _ b: ExactDecimal) -> Bool {
        let an = a.significand < 0
        let bn = b.significand < 0
        if an != bn { return an }
        func parts(_ d: ExactDecimal, fraction width: Int) -> [UInt8] {
            var digits = Array(String(d.significand.magnitude).utf8)
            if digits.count <= d.scale {
                digits = Array(repeating: 0x30, count: d.scale - digits.count + 1) + digits
            }
            digits += Array(repeating: 0x30, count: width - d.scale)
            while digits.count > 1 && digits[0] == 0x30 { digits.removeFirst() }
            return digits
        }
        let w = max(a.scale, b.scale)
        let x = parts(a, fraction: w)
        let y = parts(b, fraction: w)
        let magnitudeLess = x.count != y.count ? x.count < y.count : x.lexicographicallyPrecedes(y)
        let equal = x == y
        return an ? (!magnitudeLess && !equal) : magnitudeLess
    }
}
