"""The clip traffic loop: what published clips draw after the broadcast, and which to push."""
