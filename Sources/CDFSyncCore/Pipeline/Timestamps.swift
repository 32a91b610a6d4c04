/// Timestamp text ↔ epoch microseconds, for watermark cursors and per-key versions in watermark mode.
public enum Timestamps {
    /// Whether two timestamps as a warehouse prints them name the same instant (text compared when one does not
    /// parse).
    public static func sameInstant(_ a: String, _ b: String) -> Bool {
        if let x = micros(a), let y = micros(b) { return x == y }
        return a == b
    }

    /// Parses `YYYY-MM-DD[T| ]HH:MM[:SS[.ffffff]][Z|±HH:MM]` (no offset = UTC); nil when it is not that.
    public static func micros(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func num(_ at: Int, _ n: Int) -> Int? {
            guard at + n <= b.count else { return nil }
            var v = 0
            for i in at..<(at + n) {
                guard b[i] >= 48 && b[i] <= 57 else { return nil }
                v = v * 10 + Int(b[i] - 48)
            }
            return v
        }
        guard let y = num(0, 4), b.count >= 10, b[4] == 45, let mo = num(5, 2), b[7] == 45, let d = num(8, 2),
            (1...12).contains(mo), (1...31).contains(d)
        else { return nil }
        var h = 0, mi = 0, s = 0, frac: Int64 = 0, offset = 0
        var i = 10
        if i < b.count, b[i] == 84 || b[i] == 32 {
            guard let hh = num(i + 1, 2), i + 3 < b.count, b[i + 3] == 58, let mm = num(i + 4, 2) else { return nil }
            h = hh
            mi = mm
            i += 6
            if i < b.count, b[i] == 58 {
                guard let ss = num(i + 1, 2) else { return nil }
                s = ss
                i += 3
                if i < b.count, b[i] == 46 {
                    i += 1
                    var digits = 0
                    while i < b.count, b[i] >= 48 && b[i] <= 57 {
                        if digits < 6 { frac = frac * 10 + Int64(b[i] - 48) }
                        digits += 1
                        i += 1
                    }
                    guard digits > 0 else { return nil }
                    for _ in digits..<max(digits, 6) { frac *= 10 }
                }
            }
            if i < b.count {
                if b[i] == 90 {
                    i += 1
                } else if b[i] == 43 || b[i] == 45 {
                    guard let oh = num(i + 1, 2), i + 3 < b.count, b[i + 3] == 58, let om = num(i + 4, 2) else { return nil }
                    offset = (oh * 3600 + om * 60) * (b[i] == 45 ? -1 : 1)
                    i += 6
                }
            }
        }
        guard i == b.count, h < 24, mi < 60, s < 61 else { return nil }
        // Days from civil (Howard Hinnant's algorithm).
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = Int64(era * 146_097 + doe - 719_468)
        let seconds = days * 86_400 + Int64(h * 3600 + mi * 60 + s - offset)
        return seconds * 1_000_000 + frac
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ` for epoch microseconds.
    public static func iso(micros: Int64) -> String {
        var secs = micros / 1_000_000
        var frac = micros % 1_000_000
        if frac < 0 { frac += 1_000_000; secs -= 1 }
        var days = secs / 86_400
        var rem = secs % 86_400
        if rem < 0 { rem += 86_400; days -= 1 }
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func p(_ v: Int64, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(p(y, 4))-\(p(m, 2))-\(p(d, 2))T\(p(rem / 3600, 2)):\(p(rem % 3600 / 60, 2)):\(p(rem % 60, 2)).\(p(frac, 6))Z"
    }
}
