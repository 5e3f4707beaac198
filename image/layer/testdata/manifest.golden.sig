{
  "algorithm": "ed25519",
  "key_id": "938e16f19ec20f20",
  "signature": "i3j6+rPRLkEv3OpLlxW+DBULkRGBL84t2lKBnmaM6znVsaomhDFkHvFuC1ObR02joxUxPVOb21ApABqyP+2FBQ=="
}
