/// `${VAR}` in a pipeline file's values, replaced by the environment variable's value (like dbt's `env_var`).
///
/// - `${NAME}` (letters, digits, `_`; not starting with a digit) is the variable's value; an unset variable is an
///   error naming it (a set but empty one gives the empty text).
/// - `$$` is a literal `$` (so `$${HOME}` is the text `${HOME}`); a `$` before anything else is kept as it is
///   (`US$5`).
/// - The loader does not expand fields whose names end in `_env` (they name a variable, they do not hold a value):
///   secrets are only ever read through those, never written into the file or expanded into it.
public enum EnvironmentExpansion {
    /// `text` with every `${NAME}` replaced and every `$$` made `$`.
    /// - Throws: ``PipelineProblem`` naming an unset variable, or a `${` that is not a variable reference.
    public static func expand(_ text: String, environment: [String: String]) throws(PipelineProblem) -> String {
        guard text.unicodeScalars.contains("$") else { return text }
        var out = String.UnicodeScalarView()
        var scalars = text.unicodeScalars.makeIterator()
        var pending = scalars.next()
        while let c = pending {
            pending = scalars.next()
            guard c == "$" else {
                out.append(c)
                continue
            }
            switch pending {
            case "$":
                out.append("$")
                pending = scalars.next()
            case "{":
                var name = String.UnicodeScalarView()
                var closed = false
                while let n = scalars.next() {
                    if n == "}" {
                        closed = true
                        break
                    }
                    name.append(n)
                }
                pending = scalars.next()
                let variable = String(name)
                guard closed else {
                    throw PipelineProblem("'${\(variable)' has no closing '}' (write $$ for a literal $)")
                }
                guard isVariableName(variable) else {
                    throw PipelineProblem(
                        "'${\(variable)}' is not a variable name (letters, digits and _; write $$ for a literal $)")
                }
                guard let value = environment[variable] else {
                    throw PipelineProblem("environment variable \(variable) is not set (used as ${\(variable)})")
                }
                out.append(contentsOf: value.unicodeScalars)
            default:
                out.append("$")
            }
        }
        return String(out)
    }

    static func isVariableName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) else {
            return false
        }
        return name.utf8.allSatisfy { b in
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_")
        }
    }
}
