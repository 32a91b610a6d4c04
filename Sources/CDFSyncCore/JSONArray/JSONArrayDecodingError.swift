/// A malformed or unexpected JSON_ARRAY body, with the place where decoding stopped.
///
/// Thrown by ``ResultStreamDecoder/feed(_:onRow:)`` and ``ResultStreamDecoder/finish()``. Once a decoder has
/// thrown one, it keeps throwing the same error: a body is never half-accepted.
public struct JSONArrayDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The absolute offset, in the bytes fed to the decoder, of the byte where the problem was detected.
    ///
    /// For a truncated body this is the total number of bytes fed.
    public var byteOffset: Int
    /// The 0-based index, within this body, of the row being decoded (or about to be) when the problem was found.
    public var rowIndex: Int
    /// What went wrong, for example `"truncated JSON"` or `"row has 3 values, expected 4"`.
    public var reason: String

    /// Creates an error value.
    public init(byteOffset: Int, rowIndex: Int, reason: String) {
        self.byteOffset = byteOffset
        self.rowIndex = rowIndex
        self.reason = reason
    }

    public var description: String {
        "JSON_ARRAY decoding failed at byte \(byteOffset) (row \(rowIndex)): \(reason)"
    }
}
