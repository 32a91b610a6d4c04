/// Normalisation of the identity and contact fields (design §3): email, E.164 phone, ISO 3166-1 country.
///
/// Each function returns the normalised value or a reason the input is invalid; none of them throws.
public enum Normalize {
    /// Outcome of normalising one value.
    public enum Outcome: Equatable, Sendable {
        case value(String)
        case invalid(String)
    }

    /// Trims white space and lower-cases; checks the basic syntax `local@domain.tld` (no spaces, one `@`,
    /// a dot in the domain, no empty labels).
    public static func email(_ raw: String) -> Outcome {
        let s = raw.trimmingWhitespace().lowercased()
        guard !s.isEmpty else { return .invalid("email is empty") }
        // ASCII addresses (nearly all) are checked by bytes, the same checks in the same order: String splitting and
        // substring search were ~20 % of a pipeline sync's CPU in perf.
        if let checked = s.utf8.withContiguousStorageIfAvailable({ asciiEmail($0, s, raw) }), let checked {
            return checked
        }
        return characterEmail(s, raw)
    }

    /// ``email(_:)``'s checks on the characters of `s` (trimmed and lower-cased): the definition, taken by
    /// addresses that are not ASCII (tests compare ``asciiEmail`` with it).
    static func characterEmail(_ s: String, _ raw: String) -> Outcome {
        let parts = s.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return .invalid("email '\(raw)' must contain exactly one @") }
        let local = parts[0]
        let domain = parts[1]
        guard !local.isEmpty, local.count <= 64 else { return .invalid("email '\(raw)' has an empty or too long local part") }
        guard !s.contains(where: { $0.isWhitespace || $0 == "," || $0 == ";" || $0 == "<" || $0 == ">" }) else {
            return .invalid("email '\(raw)' contains spaces or separators")
        }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy({ !$0.isEmpty && !$0.hasPrefix("-") && !$0.hasSuffix("-") }),
            let tld = labels.last, tld.count >= 2, tld.allSatisfy(\.isLetter)
        else { return .invalid("email '\(raw)' has an invalid domain") }
        guard !local.hasPrefix("."), !local.hasSuffix("."), !local.contains("..") else {
            return .invalid("email '\(raw)' has misplaced dots")
        }
        return .value(s)
    }

    /// ``email(_:)``'s checks on the bytes of `s` (trimmed and lower-cased); `nil` when `s` is not ASCII.
    private static func asciiEmail(_ u: UnsafeBufferPointer<UInt8>, _ s: String, _ raw: String) -> Outcome? {
        var at = -1
        var ats = 0
        for (i, b) in u.enumerated() {
            if b >= 0x80 { return nil }
            if b == UInt8(ascii: "@") {
                ats += 1
                at = i
            }
        }
        guard ats == 1 else { return .invalid("email '\(raw)' must contain exactly one @") }
        let local = u[0..<at]
        guard !local.isEmpty, local.count <= 64 else { return .invalid("email '\(raw)' has an empty or too long local part") }
        guard !u.contains(where: { String.isASCIIWhitespace($0) || $0 == 0x2C || $0 == 0x3B || $0 == 0x3C || $0 == 0x3E }) else {
            return .invalid("email '\(raw)' contains spaces or separators")
        }
        // Labels of the domain: none empty, none starting or ending with '-', at least two, the last of 2+ letters.
        var labels = 0
        var labelsValid = true
        var start = at + 1
        var tld = start..<u.count
        var i = start
        while i <= u.count {
            if i == u.count || u[i] == UInt8(ascii: ".") {
                if i == start || u[start] == UInt8(ascii: "-") || u[i - 1] == UInt8(ascii: "-") { labelsValid = false }
                labels += 1
                tld = start..<i
                start = i + 1
            }
            i += 1
        }
        func isLetter(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) }
        guard labelsValid, labels >= 2, tld.count >= 2, u[tld].allSatisfy(isLetter) else {
            return .invalid("email '\(raw)' has an invalid domain")
        }
        var misplaced = local.first == UInt8(ascii: ".") || local.last == UInt8(ascii: ".")
        for j in local.indices.dropLast() where u[j] == UInt8(ascii: ".") && u[j + 1] == UInt8(ascii: ".") { misplaced = true }
        guard !misplaced else { return .invalid("email '\(raw)' has misplaced dots") }
        return .value(s)
    }

    /// E.164: `+` and 8–15 digits. Accepts separators (space, `-`, `.`, `()`, `/`), a leading `+` or `00`,
    /// or a national number in `defaultRegion` (its trunk prefix `0` dropped).
    public static func phone(_ raw: String, defaultRegion: String?) -> Outcome {
        let trimmed = raw.trimmingWhitespace()
        guard !trimmed.isEmpty else { return .invalid("phone is empty") }
        var digits = ""
        var plus = false
        if trimmed.utf8.allSatisfy({ $0 < 0x80 }) {
            // ASCII (nearly every phone number) by bytes: the same rules without a Unicode lookup per character.
            var d: [UInt8] = []
            d.reserveCapacity(16)
            for (i, b) in trimmed.utf8.enumerated() {
                if b >= 0x30 && b <= 0x39 {
                    d.append(b)
                } else if b == UInt8(ascii: "+") && i == 0 {
                    plus = true
                } else if b == 0x20 || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "(")
                    || b == UInt8(ascii: ")") || b == UInt8(ascii: "/")
                {
                    continue
                } else if b == UInt8(ascii: "x") || b == UInt8(ascii: "X"), !d.isEmpty {
                    break  // extension: ignored
                } else {
                    return .invalid("phone '\(raw)' contains '\(Character(Unicode.Scalar(b)))'")
                }
            }
            digits = String(decoding: d, as: UTF8.self)
        } else {
            for (i, c) in trimmed.enumerated() {
                if c.isASCII, c.isNumber {
                    digits.append(c)
                } else if c == "+" && i == 0 {
                    plus = true
                } else if " -.()/\u{00A0}".contains(c) {
                    continue
                } else if (c == "x" || c == "X"), !digits.isEmpty {
                    break  // extension: ignored
                } else {
                    return .invalid("phone '\(raw)' contains '\(c)'")
                }
            }
        }
        if !plus && digits.hasPrefix("00") {
            plus = true
            digits.removeFirst(2)
        }
        if !plus {
            guard let region = defaultRegion?.uppercased(), let code = callingCodes[region] else {
                return .invalid("phone '\(raw)' has no country code and no default region is configured")
            }
            if digits.hasPrefix("0") && region != "IT" { digits.removeFirst() }
            digits = code + digits
        }
        guard digits.count >= 8, digits.count <= 15, digits.first != "0" else {
            return .invalid("phone '\(raw)' does not have 8 to 15 digits with a country code")
        }
        return .value("+" + digits)
    }

    /// ISO 3166-1 alpha-2 from an alpha-2 or alpha-3 code or an English name (case-insensitive).
    public static func country(_ raw: String) -> Outcome {
        let s = raw.trimmingWhitespace().lowercased()
        guard !s.isEmpty else { return .invalid("country is empty") }
        if let c = countryIndex[s] { return .value(c) }
        return .invalid("country '\(raw)' is not an ISO 3166-1 code or name")
    }

    private static let countryIndex: [String: String] = {
        var d: [String: String] = [:]
        for c in iso3166 {
            d[c.alpha2.lowercased()] = c.alpha2
            d[c.alpha3.lowercased()] = c.alpha2
            for n in c.names { d[n] = c.alpha2 }
        }
        // Common English usages not in the ISO names.
        let extra = ["uk": "GB", "great britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB",
                     "usa": "US", "united states of america": "US", "america": "US", "south korea": "KR",
                     "north korea": "KP", "russia": "RU", "vietnam": "VN", "iran": "IR", "syria": "SY",
                     "laos": "LA", "bolivia": "BO", "venezuela": "VE", "tanzania": "TZ", "moldova": "MD",
                     "czech republic": "CZ", "holland": "NL", "the netherlands": "NL", "turkey": "TR"]
        for (k, v) in extra where d[k] == nil { d[k] = v }
        return d
    }()

    /// Country calling codes by region, for national numbers. Regions not listed need numbers in
    /// international format.
    public static let callingCodes: [String: String] = [
        "US": "1", "CA": "1", "GB": "44", "IE": "353", "DE": "49", "FR": "33", "ES": "34", "IT": "39",
        "PT": "351", "NL": "31", "BE": "32", "LU": "352", "CH": "41", "AT": "43", "DK": "45", "SE": "46",
        "NO": "47", "FI": "358", "IS": "354", "PL": "48", "CZ": "420", "SK": "421", "HU": "36", "RO": "40",
        "BG": "359", "GR": "30", "HR": "385", "SI": "386", "RS": "381", "UA": "380", "EE": "372", "LV": "371",
        "LT": "370", "TR": "90", "IL": "972", "AE": "971", "SA": "966", "EG": "20", "ZA": "27", "NG": "234",
        "KE": "254", "MA": "212", "IN": "91", "PK": "92", "BD": "880", "CN": "86", "HK": "852", "TW": "886",
        "JP": "81", "KR": "82", "SG": "65", "MY": "60", "TH": "66", "VN": "84", "PH": "63", "ID": "62",
        "AU": "61", "NZ": "64", "MX": "52", "BR": "55", "AR": "54", "CL": "56", "CO": "57", "PE": "51",
        "UY": "598", "RU": "7",
    ]
}
