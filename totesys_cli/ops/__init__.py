"""Operations beside the pipeline: init, status, verify and lake gc."""
