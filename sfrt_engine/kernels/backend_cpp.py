NAME = "cpp"
def probe():
    return "not built yet"
