# fugit oracle for pager-tester's cron: prints, for each "EXPR|FROM" line on
# stdin, the next N fire times that Ruby fugit computes, as RFC 3339 UTC,
# one line per case: "EXPR|FROM|T1 T2 ...".
#
# The one deliberate difference is applied here: a local time repeated by
# the fall-back change fires once, at its first occurrence (fugit fires at
# both), so later occurrences of an already seen local wall time are dropped.
require 'fugit'

count = Integer(ARGV[0] || '6')
STDIN.each_line do |line|
  line = line.strip
  next if line.empty? || line.start_with?('#')
  expr, from = line.split('|', 2)
  cron = Fugit::Cron.parse(expr) or abort("fugit cannot parse #{expr.inspect}")
  t = EtOrbi.make_time(from)
  seen = {}
  out = []
  guard = 0
  while out.size < count && guard < count * 4
    guard += 1
    t = cron.next_time(t)
    local = cron.zone ? t.in_time_zone(cron.zone).strftime("%F %T") : t.utc.strftime("%F %T")
    next if seen[local]
    seen[local] = true
    out << t.utc.strftime('%FT%TZ')
  end
  puts "#{expr}|#{from}|#{out.join(' ')}"
end
