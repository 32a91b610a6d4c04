extension KeyedDecodingContainer {
    /// Decodes an integer sent either as a JSON number or as a numeric string (`"42"`), as the SDK accepts.
    func flexibleInt64(forKey key: Key) throws -> Int64 {
        if let v = try? decode(Int64.self, forKey: key) { return v }
        if let s = try? decode(String.self, forKey: key),
            let v = Int64(s.trimmingASCIIWhitespace())
        {
            return v
        }
        throw DecodingError.dataCorruptedError(
            forKey: key, in: self, debugDescription: "expected an integer (JSON number or numeric string)")
    }

    /// Like ``flexibleInt64(forKey:)``, but nil when the key is missing or `null`.
    func flexibleInt64IfPresent(forKey key: Key) throws -> Int64? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        return try flexibleInt64(forKey: key)
    }

    /// Decodes an `Int` sent as a JSON number or a numeric string.
    func flexibleInt(forKey key: Key) throws -> Int {
        let v = try flexibleInt64(forKey: key)
        guard let i = Int(exactly: v) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "integer out of range")
        }
        return i
    }

    /// Like ``flexibleInt(forKey:)``, but nil when the key is missing or `null`.
    func flexibleIntIfPresent(forKey key: Key) throws -> Int? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        return try flexibleInt(forKey: key)
    }
}

extension String {
    func trimmingASCIIWhitespace() -> Substring {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" || f == "\n" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" || l == "\r" { s.removeLast() }
        return s
    }
}
