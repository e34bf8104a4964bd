"""Fake SMSC for the mailgate tests (SMPP 3.4 over TCP, loopback only), built on PyPI `smpp34`
(installed into a venv by scripts/peers.sh). Started from /work/shared/notes/test-peers/fake_smsc.py,
with throttling added.

- accepts every bind (transmitter/receiver/transceiver)
- answers submit_sm with submit_sm_resp(message_id), or
  * rejects destinations starting with REJECT_PREFIX (ESME_RINVDSTADR),
  * answers ESME_RTHROTTLED to destinations starting with THROTTLE_PREFIX the first time each session
    (destination, text) is submitted -- a retry is then accepted --, and to every THROTTLE_EVERY-th submit
    (0 = never),
- when registered_delivery & 1, pushes a deliver_sm delivery receipt (esm_class 0x04) after DLR_DELAY s:
  stat:DELIVRD err:000, or stat:UNDELIV err:001 for destinations starting with FAIL_PREFIX
- logs every event as one JSON line on stdout (QUIET=1: only errors), for tests to assert on.
Usage: python fake_smsc.py PORT   (env: DLR_DELAY=0.2 FAIL_PREFIX=999 REJECT_PREFIX=000 THROTTLE_PREFIX=888)
"""
import asyncio, datetime, itertools, json, os, sys
import smpp34

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 2775
DLR_DELAY = float(os.environ.get("DLR_DELAY", "0.2"))
FAIL_PREFIX = os.environ.get("FAIL_PREFIX", "999")
REJECT_PREFIX = os.environ.get("REJECT_PREFIX", "000")
THROTTLE_PREFIX = os.environ.get("THROTTLE_PREFIX", "888")
THROTTLE_EVERY = int(os.environ.get("THROTTLE_EVERY", "0"))
QUIET = os.environ.get("QUIET") == "1"

def log(**kw):
    if not QUIET or "error" in kw:
        print(json.dumps(kw), flush=True)

async def send_dlr(esme, ev, msg_id):
    await asyncio.sleep(DLR_DELAY)
    now = datetime.datetime.now().strftime("%y%m%d%H%M")
    failed = ev.destination_addr.startswith(FAIL_PREFIX)
    stat, err, dlvrd = ("UNDELIV", "001", "000") if failed else ("DELIVRD", "000", "001")
    text = (f"id:{msg_id} sub:001 dlvrd:{dlvrd} submit date:{now} done date:{now} "
            f"stat:{stat} err:{err} text:{ev.short_message[:20].decode('latin-1')}")
    try:
        resp = await esme.deliver_sm(
            ev.source_addr, text.encode(),
            source_addr=ev.destination_addr, esm_class=0x04,
            tlvs=[smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, msg_id.encode() + b"\0"),
                  smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([2 if not failed else 5]))])
        log(event="dlr_sent", message_id=msg_id, stat=stat, ack=resp.is_success)
    except smpp34.SmppError as e:
        log(event="dlr_failed", message_id=msg_id, error=str(e))

async def main():
    server = smpp34.Server("127.0.0.1", PORT, system_id="FAKESMSC")
    await server.start()
    print(json.dumps(dict(event="listening", port=PORT)), flush=True)
    esmes, ids, n = {}, itertools.count(1), itertools.count(1)
    throttled_once = set()
    while True:
        ev = await server.next()
        if isinstance(ev, smpp34.Esme):
            esmes[ev.session_id] = ev
            log(event="bound", system_id=ev.system_id, session=ev.session_id, can_receive=ev.can_receive)
        elif isinstance(ev, smpp34.SubmitSmEvent):
            k = next(n)
            dest = ev.destination_addr
            if dest.startswith(REJECT_PREFIX):
                ev.reject(smpp34.ESME_RINVDSTADR)
                log(event="submit_rejected", dest=dest)
                continue
            key = (ev.session_id, dest, bytes(ev.short_message))
            if (dest.startswith(THROTTLE_PREFIX) and key not in throttled_once) or (THROTTLE_EVERY and k % THROTTLE_EVERY == 0):
                throttled_once.add(key)
                ev.reject(smpp34.ESME_RTHROTTLED)
                log(event="submit_throttled", dest=dest)
                continue
            msg_id = f"{next(ids):08x}"
            ev.accept(msg_id)
            log(event="submit", message_id=msg_id, src=ev.source_addr, dest=dest,
                data_coding=ev.data_coding, esm_class=ev.esm_class,
                text=ev.short_message.hex(), registered_delivery=ev.registered_delivery)
            esme = esmes.get(ev.session_id)
            if ev.registered_delivery & 1 and esme is not None and esme.can_receive:
                asyncio.create_task(send_dlr(esme, ev, msg_id))
        elif isinstance(ev, smpp34.Unbound):
            esmes.pop(ev.session_id, None)
            log(event="unbound", session=ev.session_id)

asyncio.run(main())
