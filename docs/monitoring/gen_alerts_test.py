# Writes alerts_test.yml: the test cases (series, times, expected labels) are
# written here by hand; the expected annotations are rendered from
# alerts.yml with each case's label values and $value, because promtool
# compares annotations exactly. After changing an alert: edit its case
# below, run `python3 docs/monitoring/gen_alerts_test.py`, then
# `promtool test rules docs/monitoring/alerts_test.yml` (make test-ops).
# Needs python3-yaml.
import os, yaml, re, sys
HERE = os.path.dirname(os.path.abspath(__file__))
rules = {r['alert']: r for g in yaml.safe_load(open(os.path.join(HERE, 'alerts.yml')))['groups'] for r in g['rules']}

def render(text, labels, value):
    def sub(m):
        expr = m.group(1).strip()
        if expr.startswith('$labels.'):
            return labels[expr[len('$labels.'):]]
        if expr.startswith('$value'):
            return value
        raise Exception(expr)
    return re.sub(r'\{\{(.*?)\}\}', sub, text)

def alert(name, labels, value=''):
    r = rules[name]
    full = dict(r.get('labels', {}))
    full.update(labels)
    return {'exp_labels': full,
            'exp_annotations': {k: render(v, labels, value) for k, v in r['annotations'].items()}}

J = 'job="aegisbpf"'
def s(metric, lbl, values):
    l = ','.join([J] + [f'{k}="{v}"' for k, v in lbl.items()])
    return {'series': f'{metric}{{{l}}}', 'values': values}

tests = []
def test(name, interval, series, checks):
    tests.append({'name': name, 'interval': interval, 'input_series': series,
                  'alert_rule_test': [{'eval_time': t, 'alertname': a, 'exp_alerts': exp} for t, a, exp in checks]})

h1 = {'instance': 'h1', 'job': 'aegisbpf'}
h2 = {'instance': 'h2', 'job': 'aegisbpf'}
def L(base, **kw):
    d = dict(base); d.update(kw); return d

test('agent down: alerts after 5 minutes without a scrape; other jobs are not ours', '30s',
     [s('up', {'instance': 'h1'}, '1 1 0x20'), s('up', {'instance': 'h2'}, '1x22'),
      {'series': 'up{job="node",instance="h3"}', 'values': '0x22'}],
     [('5m', 'AegisBPFAgentDown', []), ('7m', 'AegisBPFAgentDown', [alert('AegisBPFAgentDown', h1)])])
test('not enforcing for 2 minutes', '30s',
     [s('aegisbpf_enforcement_active', {'instance': 'h1'}, '1 1 0x10'), s('aegisbpf_enforcement_active', {'instance': 'h2'}, '1x12')],
     [('2m', 'AegisBPFNotEnforcing', []), ('4m', 'AegisBPFNotEnforcing', [alert('AegisBPFNotEnforcing', h1)])])
test('a policy signature that ends within 30 days', '1d',
     [s('aegisbpf_policy_signature_expiry_timestamp_seconds', {'instance': 'h1'}, f'{40*86400}x20'),
      s('aegisbpf_policy_signature_expiry_timestamp_seconds', {'instance': 'h2'}, f'{400*86400}x20')],
     [('9d', 'AegisBPFPolicySignatureExpiring', []),
      ('11d', 'AegisBPFPolicySignatureExpiring', [alert('AegisBPFPolicySignatureExpiring', h1, '29d 0h 0m 0s')])])
test('a failing health check names the check', '30s',
     [s('aegisbpf_health_check_ok', {'instance': 'h1', 'check': 'events'}, '1 0x10'),
      s('aegisbpf_health_check_ok', {'instance': 'h1', 'check': 'enforcer'}, '1x11')],
     [('1m', 'AegisBPFHealthCheckFailing', []),
      ('3m', 'AegisBPFHealthCheckFailing', [alert('AegisBPFHealthCheckFailing', L(h1, check='events'))])])
test('three starts in 30 minutes is a restart loop; one restart is not', '1m',
     [s('aegisbpf_agent_starts_total', {'instance': 'h1'}, '1 1 2 3 4x40'),
      s('aegisbpf_agent_starts_total', {'instance': 'h2'}, '1 2x44')],
     [('5m', 'AegisBPFAgentRestartLoop', [alert('AegisBPFAgentRestartLoop', h1, '3.3')]),
      ('40m', 'AegisBPFAgentRestartLoop', [])])
test('watchdog off for 15 minutes', '1m',
     [s('aegisbpf_watchdog_enabled', {'instance': 'h1'}, '0x20'), s('aegisbpf_watchdog_enabled', {'instance': 'h2'}, '1x20')],
     [('10m', 'AegisBPFWatchdogOff', []), ('16m', 'AegisBPFWatchdogOff', [alert('AegisBPFWatchdogOff', h1)])])
test('ring buffer drops alert while they grow and clear after', '1m',
     [s('aegisbpf_ringbuf_drops_total', {'instance': 'h1'}, '0 0 0 5x20'), s('aegisbpf_ringbuf_drops_total', {'instance': 'h2'}, '7x23')],
     [('4m', 'AegisBPFRingBufferDrops', [alert('AegisBPFRingBufferDrops', h1, '5')]),
      ('15m', 'AegisBPFRingBufferDrops', [])])
test('event reader stopped for 2 minutes', '30s',
     [s('aegisbpf_events_reader_running', {'instance': 'h1'}, '1 0x10')],
     [('1m', 'AegisBPFEventReaderStopped', []), ('3m', 'AegisBPFEventReaderStopped', [alert('AegisBPFEventReaderStopped', h1)])])
test('sink errors name the sink', '1m',
     [s('aegisbpf_events_sink_errors_total', {'instance': 'h1', 'sink': 'journal'}, '0 0 2x20'),
      s('aegisbpf_events_sink_errors_total', {'instance': 'h1', 'sink': 'json'}, '0x22')],
     [('3m', 'AegisBPFEventSinkErrors', [alert('AegisBPFEventSinkErrors', L(h1, sink='journal'))]),
      ('20m', 'AegisBPFEventSinkErrors', [])])
test('kernel counters unreadable while enforcing; not when not enforcing', '1m',
     [s('aegisbpf_kernel_stats_ok', {'instance': 'h1'}, '0x10'), s('aegisbpf_enforcement_active', {'instance': 'h1'}, '1x10'),
      s('aegisbpf_kernel_stats_ok', {'instance': 'h2'}, '0x10'), s('aegisbpf_enforcement_active', {'instance': 'h2'}, '0x10')],
     [('4m', 'AegisBPFKernelStatsUnreadable', []),
      ('6m', 'AegisBPFKernelStatsUnreadable', [alert('AegisBPFKernelStatsUnreadable', h1)])])
test('a map above 80% of the per-map ceiling', '1m',
     [s('aegisbpf_map_entries', {'instance': 'h1', 'map': 'inode_rules'}, '900000x15'),
      s('aegisbpf_map_entries', {'instance': 'h1', 'map': 'net4_rules'}, '500000x15')],
     [('9m', 'AegisBPFMapNearCapacity', []),
      ('11m', 'AegisBPFMapNearCapacity', [alert('AegisBPFMapNearCapacity', {'instance': 'h1', 'map': 'inode_rules'}, '900k')])])
test('two instances for 10 minutes; a replacement that ends is fine', '1m',
     [s('aegisbpf_instances', {'instance': 'h1'}, '2x15'), s('aegisbpf_instances', {'instance': 'h2'}, '2 2 1x13')],
     [('11m', 'AegisBPFStaleInstance', [alert('AegisBPFStaleInstance', h1, '2')])])
test('RSS over 40 MiB for 15 minutes, only of the agent job', '1m',
     [s('process_resident_memory_bytes', {'instance': 'h1'}, f'{50*1024*1024}x20'),
      s('process_resident_memory_bytes', {'instance': 'h2'}, f'{30*1024*1024}x20'),
      {'series': 'process_resident_memory_bytes{job="node",instance="h1"}', 'values': f'{100*1024*1024}x20'}],
     [('16m', 'AegisBPFMemoryOverBudget', [alert('AegisBPFMemoryOverBudget', h1, '50Mi')])])
test('a rollback alerts for an hour from its time', '1m',
     [s('aegisbpf_slot_last_rollback_timestamp_seconds', {'instance': 'h1'}, '60x80'),
      s('aegisbpf_slot_active_serial', {'instance': 'h2'}, '3x80')],
     [('30m', 'AegisBPFSlotRolledBack', [alert('AegisBPFSlotRolledBack', h1)]),
      ('62m', 'AegisBPFSlotRolledBack', [])])
test('a slot pending for more than 15 minutes', '1m',
     [s('aegisbpf_slot_pending', {'instance': 'h1'}, '1x30'), s('aegisbpf_slot_pending_since_timestamp_seconds', {'instance': 'h1'}, '0x30'),
      s('aegisbpf_slot_pending', {'instance': 'h2'}, '0x30')],
     [('10m', 'AegisBPFPendingSlotStuck', []), ('16m', 'AegisBPFPendingSlotStuck', [alert('AegisBPFPendingSlotStuck', h1)])])
test('slot state unreadable for 5 minutes', '1m',
     [s('aegisbpf_slot_state_ok', {'instance': 'h1'}, '0x10'), s('aegisbpf_slot_state_ok', {'instance': 'h2'}, '1x10')],
     [('4m', 'AegisBPFSlotStateUnreadable', []), ('6m', 'AegisBPFSlotStateUnreadable', [alert('AegisBPFSlotStateUnreadable', h1)])])
test('a refused update channel alerts at once; a host waiting for its wave does not', '1m',
     [s('aegisbpf_update_last_check_result', {'instance': 'h1', 'result': 'replayed'}, '1x10'),
      s('aegisbpf_update_last_check_result', {'instance': 'h2', 'result': 'waiting'}, '1x10')],
     [('1m', 'AegisBPFUpdateChannelRefused', [alert('AegisBPFUpdateChannelRefused', L(h1, result='replayed'))])])
test('an update channel that expires within a day', '5m',
     [s('aegisbpf_update_channel_expiry_timestamp_seconds', {'instance': 'h1'}, f'{30*3600}x120'),
      s('aegisbpf_update_channel_expiry_timestamp_seconds', {'instance': 'h2'}, f'{300*3600}x120')],
     [('5h', 'AegisBPFUpdateChannelExpiring', []),
      ('8h', 'AegisBPFUpdateChannelExpiring', [alert('AegisBPFUpdateChannelExpiring', h1, '22h 0m 0s')])])
test('blocks at more than three times the rate of the hour before; a steady audit rate does not alert, for 10 minutes', '1m',
     [s('aegisbpf_decisions_total', {'instance': 'h1', 'hook': 'file_open', 'action': 'deny'}, '0+30x70 2100+300x20'),
      s('aegisbpf_decisions_total', {'instance': 'h1', 'hook': 'exec', 'action': 'allow'}, '0+600x90'),
      s('aegisbpf_decisions_total', {'instance': 'h2', 'hook': 'file_open', 'action': 'audit'}, '0+300x90')],
     [('60m', 'AegisBPFBlockRateSpike', []),
      ('86m', 'AegisBPFBlockRateSpike', [alert('AegisBPFBlockRateSpike', {'instance': 'h1'}, '5')])])
test('objects that could not be resolved', '1m',
     [s('aegisbpf_unresolved_total', {'instance': 'h1'}, '0 0 3x30'), s('aegisbpf_unresolved_total', {'instance': 'h2'}, '0x32')],
     [('5m', 'AegisBPFUnresolvedObjects', [alert('AegisBPFUnresolvedObjects', h1, '3')]),
      ('25m', 'AegisBPFUnresolvedObjects', [])])

missing = set(rules) - {c['alertname'] for t in tests for c in t['alert_rule_test']}
if missing: sys.exit(f'untested alerts: {missing}')
doc = {'rule_files': ['alerts.yml'], 'evaluation_interval': '30s', 'tests': tests}
hdr = '''# promtool unit tests of alerts.yml: `promtool test rules docs/monitoring/alerts_test.yml`
# (make test-ops), written by gen_alerts_test.py. Each test feeds series and checks when an alert fires,
# with which labels, and when it does not. Every alert of alerts.yml has a
# test (tests/docs checks it). Series values use promtool's expanding
# notation: "1 0x10" is 1 then eleven 0s, "0+30x70" counts up by 30.
'''
open(os.path.join(HERE, 'alerts_test.yml'), 'w').write(hdr + yaml.dump(doc, sort_keys=False, width=10000, default_flow_style=False))
