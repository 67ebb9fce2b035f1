# chat::auth: JWT (HS256) verification and minting, on libjwt. A target of
# its own so that tools and tests can use it without the whole gateway.
chat_library(auth ${CMAKE_CURRENT_LIST_DIR}/jwt.cpp)
target_link_libraries(chat_auth PRIVATE PkgConfig::JWT RapidJSON::RapidJSON)
