/// What a node of a pipeline file may be, for the loader's strict check (``Pipeline/shape``): the keys a mapping may
/// hold, at every level, come from the Codable types' coding keys.
public indirect enum PipelineShape: Sendable {
    /// A string, number or boolean.
    case scalar
    /// A list whose items have one shape.
    case list(PipelineShape)
    /// A mapping with free keys (`mapping:` panel field → column) whose values have one shape.
    case dictionary(PipelineShape)
    /// A mapping with the named fields only.
    case object([(key: String, shape: PipelineShape)])
    /// One shape or the other (a connection's name or its settings; a filter value or a list of them).
    case either(PipelineShape, PipelineShape)
}

/// One problem of a pipeline, as text naming the value (the caller adds the field).
public struct PipelineProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Pipeline {
    /// The characters a pipeline name may hold: ASCII letters and digits, `-`, `_` and `.`, not starting with `.`.
    ///
    /// The name keys the pipeline's state, names its default output directory (`.cdfsync/out/<name>`) and starts
    /// its webhook batches' `Idempotency-Key`: nothing in it may climb out of a directory (`../`), hide a file
    /// (`.x`) or end a header line (CR, LF).
    public static let nameCharacters = "letters A-Z a-z, digits 0-9, '-', '_' and '.' (not first)"

    /// Why `name` cannot name a pipeline (``nameCharacters``, at most `maxBytes` bytes), or nil.
    public static func nameProblem(_ name: String, maxBytes: Int) -> String? {
        if name.isEmpty { return "must not be empty" }
        if name.utf8.first == UInt8(ascii: ".") {
            return "'\(FilePaths.shown(name))' must not start with '.' (allowed: \(nameCharacters))"
        }
        let allowed = name.utf8.allSatisfy { b in
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "-")
                || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
        }
        if !allowed { return "'\(FilePaths.shown(name))' holds characters a name may not (allowed: \(nameCharacters))" }
        if name.utf8.count > maxBytes {
            return "is \(name.utf8.count) bytes; a name keys the pipeline's state and may be at most \(maxBytes) bytes"
        }
        return nil
    }
}
