"""Pictures and views: matplotlib figures (no global backend), the search report, the
retrain's TensorBoard run, and the TensorBoard server. Reads the store; never imports Ray."""
