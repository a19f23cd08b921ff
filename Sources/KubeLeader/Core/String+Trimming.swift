extension String {
    /// Without leading and trailing white space (spaces, tabs, line breaks):
    /// for values read from files, headers and flags. (`trimmingCharacters(in:)`
    /// is Foundation's, which kube-leader does not link.)
    public var trimmingWhitespace: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\n" || c == "\t" || c == "\r" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\n" || c == "\t" || c == "\r" { s.removeLast() }
        return String(s)
    }
}
