/// The saved form of a record shape's keys (storage's `RecordShape`, the `shapes` database): per top-level key,
/// its length (2 bytes big-endian) and the key exactly as written in the record, quotes and escapes included.
/// The mappings that write records build it once; the storage splits records by it.
public enum ShapeKeys {
    /// Appends `key` in that form; `false`, appending nothing, when it is longer than 65,535 bytes.
    @discardableResult
    public static func append(_ key: some Collection<UInt8>, to keys: inout [UInt8]) -> Bool {
        guard key.count <= 0xFFFF else { return false }
        keys.append(UInt8(truncatingIfNeeded: key.count >> 8))
        keys.append(UInt8(truncatingIfNeeded: key.count))
        keys.append(contentsOf: key)
        return true
    }
}
